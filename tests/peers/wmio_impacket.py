"""Decode MS-WMIO vectors with impacket's structures and print what it makes of them as JSON.

Usage: wmio_impacket.py FILE...   (an OBJREF_CUSTOM or a bare EncodingUnit per file)

Output: {"FILE": {"class": name, "superclasses": [...], "is_instance": bool,
                  "properties": [{"name", "type", "array", "key", "value", "null_bit", "default_bit"}]}}
Values are impacket's, normalised to JSON (booleans, numbers, strings, lists); embedded objects
become the string "<object>". The NdTable bits are impacket's reading of them, for instances.
"""

import ast
import json
import sys

from impacket.dcerpc.v5.dcom.wmi import CIM_ARRAY_FLAG, ENCODING_UNIT
from impacket.dcerpc.v5.dcomrt import OBJREF_CUSTOM

NUMBERS = {"sint8", "uint8", "sint16", "uint16", "sint32", "uint32", "sint64", "uint64", "real32", "real64"}


def scalar(stype, v):
    if v is None:
        return None
    if stype == "bool":
        return v in (True, "True", 0xFFFF)
    if stype == "object":
        return "<object>"
    if stype in NUMBERS and isinstance(v, str):
        return ast.literal_eval(v)
    if stype == "char16" and isinstance(v, int):
        return chr(v)
    return v


def normalise(stype, is_array, v):
    if v is None:
        return None
    if is_array:
        if isinstance(v, str):
            v = ast.literal_eval(v)
        return [scalar(stype, x) for x in v]
    return scalar(stype, v)


def decode(path):
    data = open(path, "rb").read()
    if data[:4] == b"MEOW":
        data = OBJREF_CUSTOM(data)["pObjectData"]
    block = ENCODING_UNIT(data)["ObjectBlock"]
    block.parseObject()
    cls = block.ctCurrent
    names = cls["name"].split(":")
    props = []
    for name, p in cls["properties"].items():
        is_array = bool(p["type"] & CIM_ARRAY_FLAG)
        props.append({
            "name": name,
            "type": p["stype"],
            "array": is_array,
            "key": p["qualifiers"].get("key") in (True, "True"),
            "value": normalise(p["stype"], is_array, p["value"]),
            "null_bit": p.get("null_default"),
            "default_bit": p.get("inherited_default"),
        })
    return {
        "class": names[0].strip(),
        "superclasses": [n.strip() for n in names[1:]],
        "is_instance": block.isInstance(),
        "properties": props,
    }


def main():
    print(json.dumps({path: decode(path) for path in sys.argv[1:]}))


if __name__ == "__main__":
    main()
