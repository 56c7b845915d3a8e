from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CapitalFlowSeries(_message.Message):
    __slots__ = ("security", "market", "qot_market", "code", "trading_day", "rows", "last_valid_time", "last_valid_timestamp", "received_at_ms", "source", "poll_seq", "period_type")
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    MARKET_FIELD_NUMBER: _ClassVar[int]
    QOT_MARKET_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TRADING_DAY_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    LAST_VALID_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_VALID_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    POLL_SEQ_FIELD_NUMBER: _ClassVar[int]
    PERIOD_TYPE_FIELD_NUMBER: _ClassVar[int]
    security: str
    market: str
    qot_market: int
    code: str
    trading_day: str
    rows: _containers.RepeatedCompositeFieldContainer[CapitalFlowRow]
    last_valid_time: str
    last_valid_timestamp: float
    received_at_ms: int
    source: str
    poll_seq: int
    period_type: int
    def __init__(self, security: _Optional[str] = ..., market: _Optional[str] = ..., qot_market: _Optional[int] = ..., code: _Optional[str] = ..., trading_day: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[CapitalFlowRow, _Mapping]]] = ..., last_valid_time: _Optional[str] = ..., last_valid_timestamp: _Optional[float] = ..., received_at_ms: _Optional[int] = ..., source: _Optional[str] = ..., poll_seq: _Optional[int] = ..., period_type: _Optional[int] = ...) -> None: ...

class CapitalFlowRow(_message.Message):
    __slots__ = ("time", "timestamp", "in_flow", "main_in_flow", "super_in_flow", "big_in_flow", "mid_in_flow", "sml_in_flow")
    TIME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    IN_FLOW_FIELD_NUMBER: _ClassVar[int]
    MAIN_IN_FLOW_FIELD_NUMBER: _ClassVar[int]
    SUPER_IN_FLOW_FIELD_NUMBER: _ClassVar[int]
    BIG_IN_FLOW_FIELD_NUMBER: _ClassVar[int]
    MID_IN_FLOW_FIELD_NUMBER: _ClassVar[int]
    SML_IN_FLOW_FIELD_NUMBER: _ClassVar[int]
    time: str
    timestamp: float
    in_flow: float
    main_in_flow: float
    super_in_flow: float
    big_in_flow: float
    mid_in_flow: float
    sml_in_flow: float
    def __init__(self, time: _Optional[str] = ..., timestamp: _Optional[float] = ..., in_flow: _Optional[float] = ..., main_in_flow: _Optional[float] = ..., super_in_flow: _Optional[float] = ..., big_in_flow: _Optional[float] = ..., mid_in_flow: _Optional[float] = ..., sml_in_flow: _Optional[float] = ...) -> None: ...
