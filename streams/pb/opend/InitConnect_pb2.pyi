from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class C2S(_message.Message):
    __slots__ = ("clientVer", "clientID", "recvNotify", "packetEncAlgo", "pushProtoFmt", "programmingLanguage", "aiType")
    CLIENTVER_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    RECVNOTIFY_FIELD_NUMBER: _ClassVar[int]
    PACKETENCALGO_FIELD_NUMBER: _ClassVar[int]
    PUSHPROTOFMT_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMINGLANGUAGE_FIELD_NUMBER: _ClassVar[int]
    AITYPE_FIELD_NUMBER: _ClassVar[int]
    clientVer: int
    clientID: str
    recvNotify: bool
    packetEncAlgo: int
    pushProtoFmt: int
    programmingLanguage: str
    aiType: int
    def __init__(self, clientVer: _Optional[int] = ..., clientID: _Optional[str] = ..., recvNotify: _Optional[bool] = ..., packetEncAlgo: _Optional[int] = ..., pushProtoFmt: _Optional[int] = ..., programmingLanguage: _Optional[str] = ..., aiType: _Optional[int] = ...) -> None: ...

class S2C(_message.Message):
    __slots__ = ("serverVer", "loginUserID", "connID", "connAESKey", "keepAliveInterval", "aesCBCiv", "userAttribution")
    SERVERVER_FIELD_NUMBER: _ClassVar[int]
    LOGINUSERID_FIELD_NUMBER: _ClassVar[int]
    CONNID_FIELD_NUMBER: _ClassVar[int]
    CONNAESKEY_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVEINTERVAL_FIELD_NUMBER: _ClassVar[int]
    AESCBCIV_FIELD_NUMBER: _ClassVar[int]
    USERATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    serverVer: int
    loginUserID: int
    connID: int
    connAESKey: str
    keepAliveInterval: int
    aesCBCiv: str
    userAttribution: int
    def __init__(self, serverVer: _Optional[int] = ..., loginUserID: _Optional[int] = ..., connID: _Optional[int] = ..., connAESKey: _Optional[str] = ..., keepAliveInterval: _Optional[int] = ..., aesCBCiv: _Optional[str] = ..., userAttribution: _Optional[int] = ...) -> None: ...

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
