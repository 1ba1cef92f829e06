"""Decode WMI request stubs with impacket's NDR classes and print their fields as JSON.

Usage: wmio_ndr_impacket.py KIND=FILE...   KIND is ntlmlogin, execquery or next.

Output: {"FILE": {"version": [major, minor], "flags": n, "cid": hex, "extensions": bool, ...call fields}}
A NULL string pointer prints as null; strings lose their terminating NUL. Every byte of the stub
must be consumed (trailing alignment padding aside), or the script exits non-zero.
"""

import json
import sys

from impacket.dcerpc.v5.dcom.wmi import (
    IEnumWbemClassObject_Next,
    IWbemLevel1Login_NTLMLogin,
    IWbemServices_ExecQuery,
)

CALLS = {
    "ntlmlogin": IWbemLevel1Login_NTLMLogin,
    "execquery": IWbemServices_ExecQuery,
    "next": IEnumWbemClassObject_Next,
}


def text(v):
    if isinstance(v, bytes) and v == b"":
        return None
    return str(v).rstrip("\x00")


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
        "cid": orpc["cid"].hex(),
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
    else:
        out["timeout"] = call["lTimeout"]
        out["count"] = call["uCount"]
    return out


def main():
    result = {}
    for arg in sys.argv[1:]:
        kind, path = arg.split("=", 1)
        result[path] = decode(kind, open(path, "rb").read())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
