from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DistributionSnapshot(_message.Message):
    __slots__ = ("security", "market", "qot_market", "code", "capital_in_super", "capital_in_big", "capital_in_mid", "capital_in_small", "capital_out_super", "capital_out_big", "capital_out_mid", "capital_out_small", "update_time", "update_timestamp", "trading_day", "received_at_ms", "source", "poll_seq", "capital_flow_ref_ms", "currency")
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    MARKET_FIELD_NUMBER: _ClassVar[int]
    QOT_MARKET_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_IN_SUPER_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_IN_BIG_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_IN_MID_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_IN_SMALL_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_OUT_SUPER_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_OUT_BIG_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_OUT_MID_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_OUT_SMALL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TRADING_DAY_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    POLL_SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_FLOW_REF_MS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    security: str
    market: str
    qot_market: int
    code: str
    capital_in_super: float
    capital_in_big: float
    capital_in_mid: float
    capital_in_small: float
    capital_out_super: float
    capital_out_big: float
    capital_out_mid: float
    capital_out_small: float
    update_time: str
    update_timestamp: float
    trading_day: str
    received_at_ms: int
    source: str
    poll_seq: int
    capital_flow_ref_ms: int
    currency: str
    def __init__(self, security: _Optional[str] = ..., market: _Optional[str] = ..., qot_market: _Optional[int] = ..., code: _Optional[str] = ..., capital_in_super: _Optional[float] = ..., capital_in_big: _Optional[float] = ..., capital_in_mid: _Optional[float] = ..., capital_in_small: _Optional[float] = ..., capital_out_super: _Optional[float] = ..., capital_out_big: _Optional[float] = ..., capital_out_mid: _Optional[float] = ..., capital_out_small: _Optional[float] = ..., update_time: _Optional[str] = ..., update_timestamp: _Optional[float] = ..., trading_day: _Optional[str] = ..., received_at_ms: _Optional[int] = ..., source: _Optional[str] = ..., poll_seq: _Optional[int] = ..., capital_flow_ref_ms: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...
