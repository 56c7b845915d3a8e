from streams.pb.opend import Qot_Common_pb2 as _Qot_Common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class C2S(_message.Message):
    __slots__ = ("security", "periodType", "beginTime", "endTime", "header")
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    PERIODTYPE_FIELD_NUMBER: _ClassVar[int]
    BEGINTIME_FIELD_NUMBER: _ClassVar[int]
    ENDTIME_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    security: _Qot_Common_pb2.Security
    periodType: int
    beginTime: str
    endTime: str
    header: _Qot_Common_pb2.QotHeader
    def __init__(self, security: _Optional[_Union[_Qot_Common_pb2.Security, _Mapping]] = ..., periodType: _Optional[int] = ..., beginTime: _Optional[str] = ..., endTime: _Optional[str] = ..., header: _Optional[_Union[_Qot_Common_pb2.QotHeader, _Mapping]] = ...) -> None: ...

class CapitalFlowItem(_message.Message):
    __slots__ = ("inFlow", "time", "timestamp", "mainInFlow", "superInFlow", "bigInFlow", "midInFlow", "smlInFlow")
    INFLOW_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MAININFLOW_FIELD_NUMBER: _ClassVar[int]
    SUPERINFLOW_FIELD_NUMBER: _ClassVar[int]
    BIGINFLOW_FIELD_NUMBER: _ClassVar[int]
    MIDINFLOW_FIELD_NUMBER: _ClassVar[int]
    SMLINFLOW_FIELD_NUMBER: _ClassVar[int]
    inFlow: float
    time: str
    timestamp: float
    mainInFlow: float
    superInFlow: float
    bigInFlow: float
    midInFlow: float
    smlInFlow: float
    def __init__(self, inFlow: _Optional[float] = ..., time: _Optional[str] = ..., timestamp: _Optional[float] = ..., mainInFlow: _Optional[float] = ..., superInFlow: _Optional[float] = ..., bigInFlow: _Optional[float] = ..., midInFlow: _Optional[float] = ..., smlInFlow: _Optional[float] = ...) -> None: ...

class S2C(_message.Message):
    __slots__ = ("flowItemList", "lastValidTime", "lastValidTimestamp")
    FLOWITEMLIST_FIELD_NUMBER: _ClassVar[int]
    LASTVALIDTIME_FIELD_NUMBER: _ClassVar[int]
    LASTVALIDTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    flowItemList: _containers.RepeatedCompositeFieldContainer[CapitalFlowItem]
    lastValidTime: str
    lastValidTimestamp: float
    def __init__(self, flowItemList: _Optional[_Iterable[_Union[CapitalFlowItem, _Mapping]]] = ..., lastValidTime: _Optional[str] = ..., lastValidTimestamp: _Optional[float] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("c2s",)
    C2S_FIELD_NUMBER: _ClassVar[int]
    c2s: C2S
    def __init__(self, c2s: _Optional[_Union[C2S, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("retType", "retMsg", "errCode", "s2c")
    RETTYPE_FIELD_NUMBER: _ClassVar[int]
    RETMSG_FIELD_NUMBER: _ClassVar[int]
    ERRCODE_FIELD_NUMBER: _ClassVar[int]
    S2C_FIELD_NUMBER: _ClassVar[int]
    retType: int
    retMsg: str
    errCode: int
    s2c: S2C
    def __init__(self, retType: _Optional[int] = ..., retMsg: _Optional[str] = ..., errCode: _Optional[int] = ..., s2c: _Optional[_Union[S2C, _Mapping]] = ...) -> None: ...
