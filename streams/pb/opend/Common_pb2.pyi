from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RetType_Succeed: _ClassVar[RetType]
    RetType_Failed: _ClassVar[RetType]
    RetType_TimeOut: _ClassVar[RetType]
    RetType_DisConnect: _ClassVar[RetType]
    RetType_Unknown: _ClassVar[RetType]
    RetType_Invalid: _ClassVar[RetType]

class PacketEncAlgo(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PacketEncAlgo_FTAES_ECB: _ClassVar[PacketEncAlgo]
    PacketEncAlgo_None: _ClassVar[PacketEncAlgo]
    PacketEncAlgo_AES_ECB: _ClassVar[PacketEncAlgo]
    PacketEncAlgo_AES_CBC: _ClassVar[PacketEncAlgo]

class ProtoFmt(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ProtoFmt_Protobuf: _ClassVar[ProtoFmt]
    ProtoFmt_Json: _ClassVar[ProtoFmt]

class ProgramStatusType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ProgramStatusType_None: _ClassVar[ProgramStatusType]
    ProgramStatusType_Loaded: _ClassVar[ProgramStatusType]
    ProgramStatusType_Loging: _ClassVar[ProgramStatusType]
    ProgramStatusType_NeedPicVerifyCode: _ClassVar[ProgramStatusType]
    ProgramStatusType_NeedPhoneVerifyCode: _ClassVar[ProgramStatusType]
    ProgramStatusType_LoginFailed: _ClassVar[ProgramStatusType]
    ProgramStatusType_ForceUpdate: _ClassVar[ProgramStatusType]
    ProgramStatusType_NessaryDataPreparing: _ClassVar[ProgramStatusType]
    ProgramStatusType_NessaryDataMissing: _ClassVar[ProgramStatusType]
    ProgramStatusType_UnAgreeDisclaimer: _ClassVar[ProgramStatusType]
    ProgramStatusType_Ready: _ClassVar[ProgramStatusType]
    ProgramStatusType_ForceLogout: _ClassVar[ProgramStatusType]
    ProgramStatusType_DisclaimerPullFailed: _ClassVar[ProgramStatusType]
RetType_Succeed: RetType
RetType_Failed: RetType
RetType_TimeOut: RetType
RetType_DisConnect: RetType
RetType_Unknown: RetType
RetType_Invalid: RetType
PacketEncAlgo_FTAES_ECB: PacketEncAlgo
PacketEncAlgo_None: PacketEncAlgo
PacketEncAlgo_AES_ECB: PacketEncAlgo
PacketEncAlgo_AES_CBC: PacketEncAlgo
ProtoFmt_Protobuf: ProtoFmt
ProtoFmt_Json: ProtoFmt
ProgramStatusType_None: ProgramStatusType
ProgramStatusType_Loaded: ProgramStatusType
ProgramStatusType_Loging: ProgramStatusType
ProgramStatusType_NeedPicVerifyCode: ProgramStatusType
ProgramStatusType_NeedPhoneVerifyCode: ProgramStatusType
ProgramStatusType_LoginFailed: ProgramStatusType
ProgramStatusType_ForceUpdate: ProgramStatusType
ProgramStatusType_NessaryDataPreparing: ProgramStatusType
ProgramStatusType_NessaryDataMissing: ProgramStatusType
ProgramStatusType_UnAgreeDisclaimer: ProgramStatusType
ProgramStatusType_Ready: ProgramStatusType
ProgramStatusType_ForceLogout: ProgramStatusType
ProgramStatusType_DisclaimerPullFailed: ProgramStatusType

class PacketID(_message.Message):
    __slots__ = ("connID", "serialNo")
    CONNID_FIELD_NUMBER: _ClassVar[int]
    SERIALNO_FIELD_NUMBER: _ClassVar[int]
    connID: int
    serialNo: int
    def __init__(self, connID: _Optional[int] = ..., serialNo: _Optional[int] = ...) -> None: ...

class ProgramStatus(_message.Message):
    __slots__ = ("type", "strExtDesc")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STREXTDESC_FIELD_NUMBER: _ClassVar[int]
    type: ProgramStatusType
    strExtDesc: str
    def __init__(self, type: _Optional[_Union[ProgramStatusType, str]] = ..., strExtDesc: _Optional[str] = ...) -> None: ...
