from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QotMarket(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QotMarket_Unknown: _ClassVar[QotMarket]
    QotMarket_HK_Security: _ClassVar[QotMarket]
    QotMarket_HK_Future: _ClassVar[QotMarket]
    QotMarket_US_Security: _ClassVar[QotMarket]
    QotMarket_CNSH_Security: _ClassVar[QotMarket]
    QotMarket_CNSZ_Security: _ClassVar[QotMarket]
    QotMarket_SG_Security: _ClassVar[QotMarket]
    QotMarket_JP_Security: _ClassVar[QotMarket]
    QotMarket_AU_Security: _ClassVar[QotMarket]
    QotMarket_MY_Security: _ClassVar[QotMarket]
    QotMarket_CA_Security: _ClassVar[QotMarket]
    QotMarket_FX_Security: _ClassVar[QotMarket]

class SecurityType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SecurityType_Unknown: _ClassVar[SecurityType]
    SecurityType_Bond: _ClassVar[SecurityType]
    SecurityType_Bwrt: _ClassVar[SecurityType]
    SecurityType_Eqty: _ClassVar[SecurityType]
    SecurityType_Trust: _ClassVar[SecurityType]
    SecurityType_Warrant: _ClassVar[SecurityType]
    SecurityType_Index: _ClassVar[SecurityType]
    SecurityType_Plate: _ClassVar[SecurityType]
    SecurityType_Drvt: _ClassVar[SecurityType]
    SecurityType_PlateSet: _ClassVar[SecurityType]
    SecurityType_Future: _ClassVar[SecurityType]

class QotMarketState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QotMarketState_None: _ClassVar[QotMarketState]
    QotMarketState_Auction: _ClassVar[QotMarketState]
    QotMarketState_WaitingOpen: _ClassVar[QotMarketState]
    QotMarketState_Morning: _ClassVar[QotMarketState]
    QotMarketState_Rest: _ClassVar[QotMarketState]
    QotMarketState_Afternoon: _ClassVar[QotMarketState]
    QotMarketState_Closed: _ClassVar[QotMarketState]

class PeriodType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PeriodType_Unknown: _ClassVar[PeriodType]
    PeriodType_INTRADAY: _ClassVar[PeriodType]
    PeriodType_DAY: _ClassVar[PeriodType]
    PeriodType_WEEK: _ClassVar[PeriodType]
    PeriodType_MONTH: _ClassVar[PeriodType]
QotMarket_Unknown: QotMarket
QotMarket_HK_Security: QotMarket
QotMarket_HK_Future: QotMarket
QotMarket_US_Security: QotMarket
QotMarket_CNSH_Security: QotMarket
QotMarket_CNSZ_Security: QotMarket
QotMarket_SG_Security: QotMarket
QotMarket_JP_Security: QotMarket
QotMarket_AU_Security: QotMarket
QotMarket_MY_Security: QotMarket
QotMarket_CA_Security: QotMarket
QotMarket_FX_Security: QotMarket
SecurityType_Unknown: SecurityType
SecurityType_Bond: SecurityType
SecurityType_Bwrt: SecurityType
SecurityType_Eqty: SecurityType
SecurityType_Trust: SecurityType
SecurityType_Warrant: SecurityType
SecurityType_Index: SecurityType
SecurityType_Plate: SecurityType
SecurityType_Drvt: SecurityType
SecurityType_PlateSet: SecurityType
SecurityType_Future: SecurityType
QotMarketState_None: QotMarketState
QotMarketState_Auction: QotMarketState
QotMarketState_WaitingOpen: QotMarketState
QotMarketState_Morning: QotMarketState
QotMarketState_Rest: QotMarketState
QotMarketState_Afternoon: QotMarketState
QotMarketState_Closed: QotMarketState
PeriodType_Unknown: PeriodType
PeriodType_INTRADAY: PeriodType
PeriodType_DAY: PeriodType
PeriodType_WEEK: PeriodType
PeriodType_MONTH: PeriodType

class Security(_message.Message):
    __slots__ = ("market", "code")
    MARKET_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    market: int
    code: str
    def __init__(self, market: _Optional[int] = ..., code: _Optional[str] = ...) -> None: ...

class SecurityStaticBasic(_message.Message):
    __slots__ = ("security", "id", "lotSize", "secType", "name", "listTime", "delisting", "listTimestamp", "exchType")
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LOTSIZE_FIELD_NUMBER: _ClassVar[int]
    SECTYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LISTTIME_FIELD_NUMBER: _ClassVar[int]
    DELISTING_FIELD_NUMBER: _ClassVar[int]
    LISTTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    EXCHTYPE_FIELD_NUMBER: _ClassVar[int]
    security: Security
    id: int
    lotSize: int
    secType: int
    name: str
    listTime: str
    delisting: bool
    listTimestamp: float
    exchType: int
    def __init__(self, security: _Optional[_Union[Security, _Mapping]] = ..., id: _Optional[int] = ..., lotSize: _Optional[int] = ..., secType: _Optional[int] = ..., name: _Optional[str] = ..., listTime: _Optional[str] = ..., delisting: _Optional[bool] = ..., listTimestamp: _Optional[float] = ..., exchType: _Optional[int] = ...) -> None: ...

class SecurityStaticInfo(_message.Message):
    __slots__ = ("basic",)
    BASIC_FIELD_NUMBER: _ClassVar[int]
    basic: SecurityStaticBasic
    def __init__(self, basic: _Optional[_Union[SecurityStaticBasic, _Mapping]] = ...) -> None: ...

class QotHeader(_message.Message):
    __slots__ = ("securityFirm",)
    SECURITYFIRM_FIELD_NUMBER: _ClassVar[int]
    securityFirm: int
    def __init__(self, securityFirm: _Optional[int] = ...) -> None: ...
