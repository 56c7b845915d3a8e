"""Pure flow and reversal logic: snapshots -> rolling flows -> regimes -> alerts.

Nothing here touches Kafka or Faust; agents hold these states in tables and call them.
"""

from streams.processing.detector import (
    INFLOW_TO_OUTFLOW,
    OUTFLOW_TO_INFLOW,
    Alert,
    DetectorState,
    Regime,
    make_alert_id,
    side_of,
    threshold,
)
from streams.processing.events import (
    alert_event,
    alert_headers,
    alert_payload,
    flow_payload,
    flow_point_from_record,
    flow_record,
    parse_alert,
    parse_flow,
    rfc3339,
)
from streams.processing.flow import FlowPoint, FlowState, Snapshot
from streams.processing.thresholds import DetectorParams, ThresholdConfig, ThresholdConfigError

__all__ = [
    "INFLOW_TO_OUTFLOW",
    "OUTFLOW_TO_INFLOW",
    "Alert",
    "DetectorParams",
    "DetectorState",
    "FlowPoint",
    "FlowState",
    "Regime",
    "Snapshot",
    "ThresholdConfig",
    "ThresholdConfigError",
    "alert_event",
    "alert_headers",
    "alert_payload",
    "flow_payload",
    "flow_point_from_record",
    "flow_record",
    "make_alert_id",
    "parse_alert",
    "parse_flow",
    "rfc3339",
    "side_of",
    "threshold",
]
