"""aiowmi's DCOM/WMI client against the emulator: activation, NTLMLogin, ExecQuery and its
SmartEnum path (IWbemFetchSmartEnum, IWbemWCOSmartEnum::Next).

A second independent client, so the emulator cannot drift into a dialect only cimrun speaks.

Usage: dcom_aiowmi_client.py ACTIVATION_PORT USER PASSWORD DOMAIN
Prints {"rows": N, "first": {...}} as JSON.
"""

import asyncio
import json
import sys

from aiowmi.connection import Connection
from aiowmi.query import Query


async def main():
    port, user, password, domain = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    conn = Connection("127.0.0.1", user, password, domain, port=port)
    await conn.connect()
    service = await conn.negotiate_ntlm()
    rows, first = 0, None
    try:
        query = Query("SELECT * FROM Win32_UTCTime", namespace="root/cimv2")
        async with query.context(conn, service) as qc:
            async for props in qc.results():
                if first is None:
                    first = {k: v.value for k, v in props.items() if isinstance(v.value, (int, str, type(None)))}
                rows += 1
    finally:
        service.close()
        conn.close()
    print(json.dumps({"rows": rows, "first": first}))


if __name__ == "__main__":
    asyncio.run(main())
