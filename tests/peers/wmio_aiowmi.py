"""Decode MS-WMIO vectors with aiowmi's decoder and print what it makes of them as JSON.

Usage: wmio_aiowmi.py FILE...   (an OBJREF_CUSTOM or a bare EncodingUnit per file)

Output: {"FILE": {"class": name, "properties": [{"name", "type", "array",
                  "key", "value", "null_bit", "default_bit"}]}
         or {"FILE": {"error": "..."}} when aiowmi cannot decode it (it reads instances only).}
aiowmi's values are normalised to JSON: datetimes and intervals as DMTF strings, embedded
objects as "<object>". The NdTable bits are aiowmi's reading of them.
"""

import json
import struct
import sys
from datetime import datetime, timedelta

from aiowmi.cim_type import CimType
from aiowmi.ndr.encoded_string import EncodedString
from aiowmi.ndr.encoding_unit import EncodingUnit
from aiowmi.ndr.next_response import NextResponse


class Unit(NextResponse):
    """aiowmi's own property resolution (class defaults, then the instance) over one unit."""

    def __init__(self, data):
        self._obj_block = EncodingUnit(data).object_block

    def _get_object_block(self):
        return self._obj_block


def dmtf(v):
    if isinstance(v, timedelta):
        secs = v.seconds
        return "%08d%02d%02d%02d.%06d:000" % (v.days, secs // 3600, secs // 60 % 60, secs % 60, v.microseconds)
    off = v.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    return v.strftime("%Y%m%d%H%M%S.%f") + ("%+04d" % minutes)


def scalar(stype, v):
    if v is None:
        return None
    if isinstance(v, (datetime, timedelta)):
        return dmtf(v)
    if stype == "char16" and isinstance(v, int):
        return chr(v)
    if stype in ("real32", "real64") and isinstance(v, int):
        return float(v)
    return v


def decode(path):
    data = open(path, "rb").read()
    if data[:4] == b"MEOW":
        # OBJREF_CUSTOM: signature, flags, IID, CLSID, cbExtension, reserved, then the unit.
        data = data[48:]
    try:
        unit = Unit(data)
        cls = unit.get_class_part()  # get_properties drops it
        props = unit.get_properties(load_qualifiers=True)
    except (AssertionError, struct.error, IndexError, KeyError, ValueError, UnicodeDecodeError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    # ClassPart.get_name() never returns for a class with superclasses (it walks the
    # DerivationList as bare EncodedStrings and skips no EncodingLength), so only the class name
    # is read, as get_name reads it; superclasses are not compared.
    class_name = "None" if cls.class_name_ref == 0xFFFFFFFF else EncodedString.from_data(cls.class_heap, cls.class_name_ref)[0]
    out = []
    for name, p in props.items():
        stype = CimType.get_cim_type_name(p.type)
        is_array = bool(p.type & CimType.CIM_ARRAY_FLAG)
        key = bool(getattr(p.qualifier_set, "qualifiers", {}).get("key"))
        value = p.value
        value = [scalar(stype, x) for x in value] if is_array and value is not None else scalar(stype, value)
        out.append({"name": name, "type": stype, "array": is_array, "key": key, "value": value,
                    "null_bit": p.null_default, "default_bit": p.inherited_default})
    return {"class": class_name, "properties": out}


def main():
    print(json.dumps({path: decode(path) for path in sys.argv[1:]}, default=repr))


if __name__ == "__main__":
    main()
