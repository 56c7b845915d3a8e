"""The Faust application: snapshots -> flow tables -> flows and reversal alerts."""
