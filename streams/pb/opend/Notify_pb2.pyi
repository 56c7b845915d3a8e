from streams.pb.opend import Common_pb2 as _Common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NotifyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NotifyType_None: _ClassVar[NotifyType]
    NotifyType_GtwEvent: _ClassVar[NotifyType]
    NotifyType_ProgramStatus: _ClassVar[NotifyType]
    NotifyType_ConnStatus: _ClassVar[NotifyType]
    NotifyType_QotRight: _ClassVar[NotifyType]
    NotifyType_APILevel: _ClassVar[NotifyType]
    NotifyType_APIQuota: _ClassVar[NotifyType]
    NotifyType_UsedQuota: _ClassVar[NotifyType]
NotifyType_None: NotifyType
NotifyType_GtwEvent: NotifyType
NotifyType_ProgramStatus: NotifyType
NotifyType_ConnStatus: NotifyType
NotifyType_QotRight: NotifyType
NotifyType_APILevel: NotifyType
NotifyType_APIQuota: NotifyType
NotifyType_UsedQuota: NotifyType

class GtwEvent(_message.Message):
    __slots__ = ("eventType", "desc")
    EVENTTYPE_FIELD_NUMBER: _ClassVar[int]
    DESC_FIELD_NUMBER: _ClassVar[int]
    eventType: int
    desc: str
    def __init__(self, eventType: _Optional[int] = ..., desc: _Optional[str] = ...) -> None: ...

class ProgramStatus(_message.Message):
    __slots__ = ("programStatus",)
    PROGRAMSTATUS_FIELD_NUMBER: _ClassVar[int]
    programStatus: _Common_pb2.ProgramStatus
    def __init__(self, programStatus: _Optional[_Union[_Common_pb2.ProgramStatus, _Mapping]] = ...) -> None: ...

class ConnectStatus(_message.Message):
    __slots__ = ("qotLogined", "trdLogined")
    QOTLOGINED_FIELD_NUMBER: _ClassVar[int]
    TRDLOGINED_FIELD_NUMBER: _ClassVar[int]
    qotLogined: bool
    trdLogined: bool
    def __init__(self, qotLogined: _Optional[bool] = ..., trdLogined: _Optional[bool] = ...) -> None: ...

class S2C(_message.Message):
    __slots__ = ("type", "event", "programStatus", "connectStatus")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PROGRAMSTATUS_FIELD_NUMBER: _ClassVar[int]
    CONNECTSTATUS_FIELD_NUMBER: _ClassVar[int]
    type: int
    event: GtwEvent
    programStatus: ProgramStatus
    connectStatus: ConnectStatus
    def __init__(self, type: _Optional[int] = ..., event: _Optional[_Union[GtwEvent, _Mapping]] = ..., programStatus: _Optional[_Union[ProgramStatus, _Mapping]] = ..., connectStatus: _Optional[_Union[ConnectStatus, _Mapping]] = ...) -> None: ...

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
