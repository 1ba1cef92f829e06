"""impacket's side of remote activation (MS-DCOM 2.2.22): decode our RemoteCreateInstance
request, and build an activation request and reply with impacket's own structures.

Usage: wmio_activation_impacket.py decode FILE      prints the request's fields as JSON
       wmio_activation_impacket.py encode DIR       writes request_blob.bin (the blob impacket's
                                                   DCOMConnection sends) and reply_blob.bin to
                                                   DIR and prints what they hold
"""

import json
import sys

from impacket.dcerpc.v5.dcom.wmi import CLSID_WbemLevel1Login, IID_IWbemLevel1Login
from impacket.dcerpc.v5.dcomrt import (
    ACTIVATION_BLOB,
    CLSID,
    CLSID_ActivationContextInfo,
    CLSID_InstantiationInfo,
    CLSID_ScmRequestInfo,
    CLSID_ServerLocationInfo,
    IID,
    OBJREF_CUSTOM,
    ActivationContextInfoData,
    InstantiationInfoData,
    LocationInfoData,
    PMInterfacePointer,
    PropsOutInfo,
    RemoteCreateInstance,
    ScmReplyInfoData,
    ScmRequestInfoData,
)
from impacket.dcerpc.v5.dtypes import DWORD, HRESULT, NULL

CLASSES = {
    CLSID_InstantiationInfo: InstantiationInfoData,
    CLSID_ActivationContextInfo: ActivationContextInfoData,
    CLSID_ServerLocationInfo: LocationInfoData,
    CLSID_ScmRequestInfo: ScmRequestInfoData,
}


def guid(g):
    return (g if isinstance(g, bytes) else g["Data"]).hex()


def parse(cls, data):
    obj = cls()
    size = obj.fromString(data)
    obj.fromStringReferents(data[size:])
    return obj


def decode(path):
    call = RemoteCreateInstance(open(path, "rb").read())
    objref = OBJREF_CUSTOM(b"".join(call["pActProperties"]["abData"]))
    blob = ACTIVATION_BLOB(objref["pObjectData"])
    header = blob["CustomHeader"]
    clsids = [guid(c) for c in header["pclsid"]]
    sizes = [s["Data"] if not isinstance(s, int) else s for s in header["pSizes"]]
    out = {
        "orpc_flags": call["ORPCthis"]["flags"],
        "unk_outer_null": call.fields["pUnkOuter"].getData() == b"\x00" * 4,
        "objref_iid": guid(objref["iid"]),
        "objref_clsid": guid(objref["clsid"]),
        "total": blob["dwSize"],
        "header_total": header["totalSize"],
        "clsids": clsids,
    }
    props = blob["Property"]
    for clsid, size in zip(header["pclsid"], sizes):
        key = clsid["Data"] if not isinstance(clsid, bytes) else clsid
        data, props = props[:size], props[size:]
        obj = parse(CLASSES[key], data)
        if key == CLSID_InstantiationInfo:
            out["class_id"] = guid(obj["classId"])
            out["class_ctx"] = obj["classCtx"]
            out["iids"] = [guid(i) for i in obj["pIID"]]
            out["this_size"] = obj["thisSize"]
            out["size"] = size
            out["client_version"] = [obj["clientCOMVersion"]["MajorVersion"], obj["clientCOMVersion"]["MinorVersion"]]
        elif key == CLSID_ScmRequestInfo:
            out["imp_level"] = obj["remoteRequest"]["ClientImpLevel"]
            out["protseqs"] = list(obj["remoteRequest"]["pRequestedProtseqs"])
        elif key == CLSID_ServerLocationInfo:
            out["machine_name_null"] = obj.fields["machineName"].getData() == b"\x00" * 4
    return out


def request_blob():
    """What DCOMConnection.RemoteCreateInstance puts in pActProperties (minus the network)."""
    blob = ACTIVATION_BLOB()
    blob["CustomHeader"]["destCtx"] = 2
    blob["CustomHeader"]["pdwReserved"] = NULL
    for c in (CLSID_InstantiationInfo, CLSID_ActivationContextInfo, CLSID_ServerLocationInfo, CLSID_ScmRequestInfo):
        clsid = CLSID()
        clsid["Data"] = c
        blob["CustomHeader"]["pclsid"].append(clsid)

    def add(marshaled, pad=True):
        size = DWORD()
        extra = (8 - len(marshaled) % 8) % 8 if pad else 0
        size["Data"] = len(marshaled) + extra
        blob["CustomHeader"]["pSizes"].append(size)
        return marshaled + b"\xFA" * extra, size["Data"]

    info = InstantiationInfoData()
    info["classId"] = CLSID_WbemLevel1Login
    info["cIID"] = 1
    iid = IID()
    iid["Data"] = IID_IWbemLevel1Login[:16]
    info["pIID"].append(iid)
    marshaled, size = add(info.getData() + info.getDataReferents())
    info["thisSize"] = size
    props = marshaled
    ctx = ActivationContextInfoData()
    ctx["pIFDClientCtx"] = NULL
    ctx["pIFDPrototypeCtx"] = NULL
    props += add(ctx.getData() + ctx.getDataReferents())[0]
    loc = LocationInfoData()
    loc["machineName"] = NULL
    props += add(loc.getData() + loc.getDataReferents())[0]
    scm = ScmRequestInfoData()
    scm["pdwReserved"] = NULL
    scm["remoteRequest"]["cRequestedProtseqs"] = 1
    scm["remoteRequest"]["pRequestedProtseqs"].append(7)
    props += add(scm.getData() + scm.getDataReferents())[0]
    blob["Property"] = props
    return blob.getData()


def reply_blob(objref, binding="WIN-HOST[49667]"):
    props = PropsOutInfo()
    props["cIfs"] = 1
    iid = IID()
    iid["Data"] = IID_IWbemLevel1Login[:16]
    props["piid"].append(iid)
    ok = HRESULT()
    ok["Data"] = 0
    props["phresults"].append(ok)
    pointer = PMInterfacePointer()
    pointer["ulCntData"] = len(objref)
    pointer["abData"] = list(objref)
    props["ppIntfData"].append(pointer)

    scm = ScmReplyInfoData()
    scm["pdwReserved"] = 0
    reply = scm["remoteReply"]
    reply["Oxid"] = 0x0102030405060708
    units = [7] + [ord(c) for c in binding] + [0, 0]
    offset = len(units)
    units += [10, 0xFFFF, 0, 0]
    reply["pdsaOxidBindings"]["wNumEntries"] = len(units)
    reply["pdsaOxidBindings"]["wSecurityOffset"] = offset
    for u in units:
        reply["pdsaOxidBindings"]["aStringArray"].append(u)
    reply["ipidRemUnknown"] = bytes(range(16))
    reply["authnHint"] = 5
    reply["serverVersion"]["MajorVersion"] = 5
    reply["serverVersion"]["MinorVersion"] = 7

    blob = ACTIVATION_BLOB()
    blob["CustomHeader"]["destCtx"] = 2
    blob["CustomHeader"]["pdwReserved"] = NULL
    data = b""
    for cls_id, obj in ((b"\x39\x03" + b"\x00" * 6 + b"\xc0" + b"\x00" * 6 + b"\x46", props),
                        (b"\xb6\x01" + b"\x00" * 6 + b"\xc0" + b"\x00" * 6 + b"\x46", scm)):
        clsid = CLSID()
        clsid["Data"] = cls_id
        blob["CustomHeader"]["pclsid"].append(clsid)
        marshaled = obj.getData() + obj.getDataReferents()
        marshaled += b"\xFA" * ((8 - len(marshaled) % 8) % 8)
        size = DWORD()
        size["Data"] = len(marshaled)
        blob["CustomHeader"]["pSizes"].append(size)
        data += marshaled
    blob["Property"] = data
    return blob.getData(), {
        "oxid": reply["Oxid"],
        "ipid": bytes(range(16)).hex(),
        "authn_hint": 5,
        "version": [5, 7],
        "bindings": [[7, binding]],
        "security": [[10, ""]],
        "iid": IID_IWbemLevel1Login[:16].hex(),
        "objref": objref.hex(),
    }


def main():
    if sys.argv[1] == "decode":
        print(json.dumps(decode(sys.argv[2])))
        return
    directory = sys.argv[2]
    open(f"{directory}/request_blob.bin", "wb").write(request_blob())
    objref = b"MEOW" + b"\x01\x00\x00\x00" + b"\x11" * 16 + b"\x00" * 48
    reply, said = reply_blob(objref)
    open(f"{directory}/reply_blob.bin", "wb").write(reply)
    said["request"] = {
        "class_id": CLSID_WbemLevel1Login.hex(),
        "iids": [IID_IWbemLevel1Login[:16].hex()],
        "protseqs": [7],
    }
    print(json.dumps(said))


if __name__ == "__main__":
    main()
