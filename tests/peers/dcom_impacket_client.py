"""impacket's own DCOM/WMI client against the emulator, as impacket's wmiquery.py drives it:
activation, NTLMLogin, ExecQuery, then IEnumWbemClassObject::Next one object per call.

It keeps the emulator honest (a server only cimrun can talk to proves nothing) and is the
baseline of the round-trip benchmark.

Usage: dcom_impacket_client.py ACTIVATION_PORT USER PASSWORD DOMAIN [CLASS]
Prints {"rows": N, "class": ..., "first": {...}, "seconds": S} as JSON.
"""

import json
import sys
import time

from impacket.dcerpc.v5 import dcomrt, transport
from impacket.dcerpc.v5.dcom import wmi
from impacket.dcerpc.v5.dtypes import NULL


def main():
    port, user, password, domain = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    cls = sys.argv[5] if len(sys.argv) > 5 else "Win32_UTCTime"
    factory = transport.DCERPCTransportFactory

    # DCOMConnection always dials 135; the emulator's activation port is a free one.
    def dial(binding):
        t = factory(binding)
        if binding == "ncacn_ip_tcp:127.0.0.1":
            t.set_dport(port)
        return t

    dcomrt.transport.DCERPCTransportFactory = dial
    started = time.monotonic()
    dcom = dcomrt.DCOMConnection("127.0.0.1", user, password, domain, oxidResolver=False)
    try:
        login = wmi.IWbemLevel1Login(dcom.CoCreateInstanceEx(wmi.CLSID_WbemLevel1Login, wmi.IID_IWbemLevel1Login))
        services = login.NTLMLogin("//./root/cimv2", NULL, NULL)
        login.RemRelease()
        enum = services.ExecQuery("SELECT * FROM %s" % cls)
        rows, first, name = 0, None, None
        while True:
            try:
                obj = enum.Next(0xFFFFFFFF, 1)[0]
            except Exception as e:
                if "S_FALSE" in str(e):
                    break
                raise
            props = obj.getProperties()
            if first is None:
                name = obj.getClassName()
                first = {k: v["value"] for k, v in props.items() if isinstance(v["value"], (int, str, type(None)))}
            rows += 1
        enum.RemRelease()
        services.RemRelease()
    finally:
        dcom.disconnect()
    print(json.dumps({"rows": rows, "class": name, "first": first, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
