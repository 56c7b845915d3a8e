from streams.pb.opend import Qot_Common_pb2 as _Qot_Common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class C2S(_message.Message):
    __slots__ = ("security", "header")
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    security: _Qot_Common_pb2.Security
    header: _Qot_Common_pb2.QotHeader
    def __init__(self, security: _Optional[_Union[_Qot_Common_pb2.Security, _Mapping]] = ..., header: _Optional[_Union[_Qot_Common_pb2.QotHeader, _Mapping]] = ...) -> None: ...

class S2C(_message.Message):
    __slots__ = ("capitalInSuper", "capitalInBig", "capitalInMid", "capitalInSmall", "capitalOutSuper", "capitalOutBig", "capitalOutMid", "capitalOutSmall", "updateTime", "updateTimestamp")
    CAPITALINSUPER_FIELD_NUMBER: _ClassVar[int]
    CAPITALINBIG_FIELD_NUMBER: _ClassVar[int]
    CAPITALINMID_FIELD_NUMBER: _ClassVar[int]
    CAPITALINSMALL_FIELD_NUMBER: _ClassVar[int]
    CAPITALOUTSUPER_FIELD_NUMBER: _ClassVar[int]
    CAPITALOUTBIG_FIELD_NUMBER: _ClassVar[int]
    CAPITALOUTMID_FIELD_NUMBER: _ClassVar[int]
    CAPITALOUTSMALL_FIELD_NUMBER: _ClassVar[int]
    UPDATETIME_FIELD_NUMBER: _ClassVar[int]
    UPDATETIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    capitalInSuper: float
    capitalInBig: float
    capitalInMid: float
    capitalInSmall: float
    capitalOutSuper: float
    capitalOutBig: float
    capitalOutMid: float
    capitalOutSmall: float
    updateTime: str
    updateTimestamp: float
    def __init__(self, capitalInSuper: _Optional[float] = ..., capitalInBig: _Optional[float] = ..., capitalInMid: _Optional[float] = ..., capitalInSmall: _Optional[float] = ..., capitalOutSuper: _Optional[float] = ..., capitalOutBig: _Optional[float] = ..., capitalOutMid: _Optional[float] = ..., capitalOutSmall: _Optional[float] = ..., updateTime: _Optional[str] = ..., updateTimestamp: _Optional[float] = ...) -> None: ...

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
