"""Decode WMI/DCOM request stubs with impacket's NDR classes, or encode replies with them.

Usage: wmio_ndr_impacket.py KIND=FILE...   KIND is ntlmlogin, execquery, next, getsmartenum,
                                           remqi or remrelease: prints each request's fields.
       wmio_ndr_impacket.py encode DIR FIXTURE...
                                           writes login_reply.bin and next_reply.bin (carrying
                                           the FIXTURE OBJREFs) to DIR and prints what they hold.

Output: {"FILE": {"version": [major, minor], "flags": n, "cid": hex, "extensions": bool, ...call fields}}
A NULL string pointer prints as null; strings lose their terminating NUL. Every byte of the stub
must be consumed (trailing alignment padding aside), or the script exits non-zero.
"""

import json
import sys

from impacket.dcerpc.v5.dcom.wmi import (
    IEnumWbemClassObject_Next,
    IEnumWbemClassObject_NextResponse,
    IWbemFetchSmartEnum_GetSmartEnum,
    IWbemLevel1Login_NTLMLogin,
    IWbemLevel1Login_NTLMLoginResponse,
    IWbemServices_ExecQuery,
)
from impacket.dcerpc.v5.dcomrt import (
    DUALSTRINGARRAYPACKED,
    OBJREF_STANDARD,
    PMInterfacePointer,
    RemQueryInterface,
    RemRelease,
)
from impacket.dcerpc.v5.dtypes import NULL

CALLS = {
    "ntlmlogin": IWbemLevel1Login_NTLMLogin,
    "execquery": IWbemServices_ExecQuery,
    "next": IEnumWbemClassObject_Next,
    "getsmartenum": IWbemFetchSmartEnum_GetSmartEnum,
    "remqi": RemQueryInterface,
    "remrelease": RemRelease,
}


def text(v):
    if isinstance(v, bytes) and v == b"":
        return None
    return str(v).rstrip("\x00")


def guid(g):
    """A GUID field as hex, whether impacket hands back bytes or a GUID structure."""
    return (g if isinstance(g, bytes) else g["Data"]).hex()


def is_null(p):
    return p.getData() == b"\x00\x00\x00\x00"


def decode(kind, data):
    call = CALLS[kind](data)
    used = len(call.getData())
    if len(data) - used >= 8:
        raise SystemExit(f"{kind}: impacket used {used} of {len(data)} bytes")
    orpc = call["ORPCthis"]
    out = {
        "version": [orpc["version"]["MajorVersion"], orpc["version"]["MinorVersion"]],
        "flags": orpc["flags"],
        "cid": guid(orpc["cid"]),
        "extensions": not is_null(orpc.fields["extensions"]),
    }
    if kind == "ntlmlogin":
        out["network_resource"] = text(call["wszNetworkResource"])
        out["preferred_locale"] = text(call["wszPreferredLocale"])
        out["lflags"] = call["lFlags"]
        out["ctx"] = not is_null(call.fields["pCtx"])
    elif kind == "execquery":
        out["language"] = text(call["strQueryLanguage"]["asData"])
        out["query"] = text(call["strQuery"]["asData"])
        out["lflags"] = call["lFlags"]
        out["ctx"] = not is_null(call.fields["pCtx"])
    elif kind == "next":
        out["timeout"] = call["lTimeout"]
        out["count"] = call["uCount"]
    elif kind == "remqi":
        out["ipid"] = guid(call["ripid"])
        out["refs"] = call["cRefs"]
        out["iids"] = [guid(i) for i in call["iids"]]
        out["count"] = call["cIids"]
    elif kind == "remrelease":
        out["count"] = call["cInterfaceRefs"]
        out["refs"] = [[guid(r["ipid"]), r["cPublicRefs"], r["cPrivateRefs"]] for r in call["InterfaceRefs"]]
    return out


def interface_pointer(objref):
    p = PMInterfacePointer()
    p["ulCntData"] = len(objref)
    p["abData"] = list(objref)
    return p


def packed_bindings():
    """A DUALSTRINGARRAY: one ncacn_ip_tcp binding, then one NTLM security binding."""
    units = [7] + [ord(c) for c in "WIN-HOST[49667]"] + [0, 0]
    offset = len(units)
    units += [10, 0xFFFF, 0, 0]
    d = DUALSTRINGARRAYPACKED()
    d["wNumEntries"] = len(units)
    d["wSecurityOffset"] = offset
    d["aStringArray"] = b"".join(u.to_bytes(2, "little") for u in units)
    return d.getData()


def encode(directory, fixtures):
    objref = OBJREF_STANDARD()
    objref["iid"] = bytes(range(16))
    objref["std"]["flags"] = 0
    objref["std"]["cPublicRefs"] = 5
    objref["std"]["oxid"] = 0x1122334455667788
    objref["std"]["oid"] = 0x99AABBCCDDEEFF00
    objref["std"]["ipid"] = bytes(range(16, 32))
    objref["saResAddr"] = packed_bindings()

    login = IWbemLevel1Login_NTLMLoginResponse()
    login["ORPCthat"]["flags"] = 0
    login["ORPCthat"]["extensions"] = NULL
    login["ppNamespace"] = interface_pointer(objref.getData())
    login["ErrorCode"] = 0
    open(f"{directory}/login_reply.bin", "wb").write(login.getData())

    objects = [open(f, "rb").read() for f in fixtures]
    nxt = IEnumWbemClassObject_NextResponse()
    nxt["ORPCthat"]["flags"] = 0
    nxt["ORPCthat"]["extensions"] = NULL
    for o in objects:
        nxt["apObjects"].append(interface_pointer(o))
    nxt["puReturned"] = len(objects)
    nxt["ErrorCode"] = 1
    open(f"{directory}/next_reply.bin", "wb").write(nxt.getData())

    return {
        "login_reply": {
            "hresult": 0,
            "iid": objref["iid"].hex(),
            "public_refs": 5,
            "oxid": objref["std"]["oxid"],
            "oid": objref["std"]["oid"],
            "ipid": objref["std"]["ipid"].hex(),
            "bindings": [[7, "WIN-HOST[49667]"]],
            "security": [[10, ""]],
        },
        "next_reply": {"hresult": 1, "returned": len(objects), "objects": [o.hex() for o in objects]},
    }


def main():
    if sys.argv[1:2] == ["encode"]:
        print(json.dumps(encode(sys.argv[2], sys.argv[3:])))
        return
    result = {}
    for arg in sys.argv[1:]:
        kind, path = arg.split("=", 1)
        result[path] = decode(kind, open(path, "rb").read())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
