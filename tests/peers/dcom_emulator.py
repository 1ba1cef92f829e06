"""A DCOM/WMI server emulator on loopback, built on impacket's structures and NTLM primitives.

It speaks connection-oriented DCE/RPC with NTLM at packet integrity or privacy and answers the
calls a WMI query makes: IRemoteSCMActivator::RemoteCreateInstance on the activation port, then
on the object port IWbemLevel1Login::NTLMLogin, IWbemServices::ExecQuery,
IEnumWbemClassObject::Next, IRemUnknown::RemQueryInterface (for IWbemFetchSmartEnum),
IWbemFetchSmartEnum::GetSmartEnum, IWbemWCOSmartEnum::Next (WBEMDATA batches that send the class
once per client proxy GUID) and IRemUnknown::RemRelease. Objects come from the recorded
Win32_UTCTime instance in testdata (a real Windows encoding).

It checks what a Windows server checks: the NTLMv2 proof against the password, the MIC, and the
signature of every request fragment (after unsealing at privacy); any failure is logged and
answered with an access-denied fault. Every event goes to the JSON log (--log), which the tests
read to confirm what was verified.

Usage: dcom_emulator.py --testdata DIR --log FILE [--user U --domain D --password P]
                        [--lifetime SECONDS] [--max-frag N] [--rows N] [--corrupt-signature K]
                        [--com-minor 6] [--no-smart-enum] [--latency-ms MS] [--log-on-close]
Prints {"activation_port": A, "object_port": B} on one line once listening, and exits by itself
after --lifetime seconds.
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import sys
import threading
import time

from Cryptodome.Cipher import ARC4
from impacket import ntlm
from impacket.dcerpc.v5.dcom.wmi import (
    CLSID_WbemLevel1Login,
    IEnumWbemClassObject_Next,
    IID_IEnumWbemClassObject,
    IID_IWbemFetchSmartEnum,
    IID_IWbemLevel1Login,
    IID_IWbemServices,
    IID_IWbemWCOSmartEnum,
    IWbemFetchSmartEnum_GetSmartEnum,
    IWbemLevel1Login_NTLMLogin,
    IWbemServices_ExecQuery,
)
from impacket.dcerpc.v5.dcomrt import (
    CLSID_ActivationPropertiesOut,
    IID_IActivationPropertiesOut,
    OBJREF_CUSTOM,
    OBJREF_STANDARD,
    RemoteCreateInstance,
    RemoteCreateInstanceResponse,
    RemQueryInterface,
    RemRelease,
)
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import SEC_TRAILER
from impacket.uuid import uuidtup_to_bin

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wmio_activation_impacket import reply_blob  # noqa: E402

IID_REMOTE_SCM_ACTIVATOR = uuidtup_to_bin(("000001A0-0000-0000-C000-000000000046", "0.0"))[:16]
IID_REM_UNKNOWN = uuidtup_to_bin(("00000131-0000-0000-C000-000000000046", "0.0"))[:16]
IID_REM_UNKNOWN2 = uuidtup_to_bin(("00000143-0000-0000-C000-000000000046", "0.0"))[:16]
NDR = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))

REQUEST, RESPONSE, FAULT, BIND, BIND_ACK, BIND_NAK, ALTER, ALTER_RESP, AUTH3 = 0, 2, 3, 11, 12, 13, 14, 15, 16
FIRST, LAST, OBJECT = 0x01, 0x02, 0x80
ACCESS_DENIED, OP_RNG_ERROR, UNK_IF, BAD_STUB_DATA = 0x5, 0x1C010002, 0x1C010003, 0x6F7
WBEM_S_FALSE, WBEM_E_INVALID_NAMESPACE, WBEM_E_INVALID_CLASS = 1, 0x8004100E, 0x80041010
OXID = 0x0102030405060708
RPC_E_VERSION_MISMATCH = 0x80010110

LOCK = threading.Lock()
LOG = {"connections": []}


def write_log(path):
    with LOCK:
        data = json.dumps(LOG, indent=1)
    tmp = f"{path}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def hmac_md5(key, data):
    return hmac.new(key, data, hashlib.md5).digest()


def av_pairs(data):
    out = {}
    while len(data) >= 4:
        kind, length = struct.unpack("<HH", data[:4])
        if kind == 0:
            break
        out[kind] = data[4 : 4 + length]
        data = data[4 + length :]
    return out


def pad_to(buf, n):
    return buf + b"\x00" * ((n - len(buf) % n) % n)


def split_instance(unit):
    """An MS-WMIO encoding unit's object block, and the same block without its ClassPart
    (what WBEMOBJECT_INSTANCE_NOCLASS carries)."""
    block = unit[8:]
    pos = 1
    if block[0] & 0x04:  # decorated: server and namespace as encoded strings
        for _ in range(2):
            wide = block[pos] == 1
            pos += 1
            if wide:
                while block[pos : pos + 2] != b"\x00\x00":
                    pos += 2
                pos += 2
            else:
                pos = block.index(b"\x00", pos) + 1
    class_len = struct.unpack("<I", block[pos : pos + 4])[0]
    return block, block[:pos] + block[pos + class_len :]


def wbemdata(objects):
    """A WBEMDATA object array (MS-WMI 2.2.14) of (class GUID, object block, with class?)."""
    body = b""
    for class_id, data, with_class in objects:
        inner = struct.pack("<II", 0x18, len(data)) + class_id + data
        body += struct.pack("<IIB", 9, len(inner), 2 if with_class else 3) + inner
    header3 = struct.pack("<III", 12, len(body), len(objects))
    header2 = struct.pack("<II", 8, len(header3) + len(body))
    rest = header2 + header3 + body
    # bVersion 1, bPacketType 1: an IWbemWCOSmartEnum::Next object array (MS-WMI 2.2.14).
    return struct.pack("<I", 0) + b"WBEMDATA" + struct.pack("<IIIBB", 0x1A, len(rest), 0, 1, 1) + rest


class Objects:
    """IPIDs handed out, and what each stands for."""

    def __init__(self):
        self.next = 1
        # The OXID's IRemUnknown, at the IPID the activation reply names (wmio_activation_impacket).
        self.by_ipid = {bytes(range(16)): ["remunknown", None, 1]}

    def add(self, kind, state=None):
        ipid = struct.pack("<I", self.next) + b"\xee" * 12
        self.next += 1
        self.by_ipid[ipid] = [kind, state, 1]
        return ipid


class SecContext:
    """One NTLM security context: its handshake, keys and sequence numbers."""

    def __init__(self, ctx_id, level):
        self.ctx_id = ctx_id
        self.level = level
        self.flags = 0
        self.auth_ok = False
        self.send_seq = 0
        self.recv_seq = 0


class Conn:
    def __init__(self, sock, server, role):
        self.sock = sock
        self.server = server
        self.role = role
        self.contexts = {}
        # Security contexts by auth_context_id: cimrun keeps one per association, impacket
        # makes one per interface (an NTLM handshake inside each alter_context).
        self.contexts_by_auth = {}
        self.sc = SecContext(0, 0)
        self.session = None
        self.max_send = server.max_frag
        self.pending = {}
        self.rec = {"role": role, "binds": [], "alter_contexts": [], "requests": [], "verified_signatures": 0,
                    "bad_signatures": 0, "fragments_in": 0, "fragments_out": 0, "auth": None}
        with LOCK:
            LOG["connections"].append(self.rec)

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def run(self):
        try:
            while True:
                head = self.recv_exact(16)
                frag_len = struct.unpack("<H", head[8:10])[0]
                pdu = head + self.recv_exact(frag_len - 16)
                self.handle(pdu)
                if not self.server.log_on_close:
                    write_log(self.server.log)
        except (EOFError, ConnectionError, OSError):
            pass
        finally:
            self.sock.close()
            write_log(self.server.log)

    # --- framing -------------------------------------------------------------------------

    def header(self, ptype, flags, frag_len, auth_len, call_id):
        return struct.pack("<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\x00\x00\x00", frag_len, auth_len, call_id)

    def send(self, data):
        # The log is complete before the client sees the answer it may check the log after.
        if not self.server.log_on_close:
            write_log(self.server.log)
        self.sock.sendall(data)

    def trailer(self, pdu):
        auth_len = struct.unpack("<H", pdu[10:12])[0]
        trailer = SEC_TRAILER(pdu[len(pdu) - auth_len - 8 : len(pdu) - auth_len])
        return trailer, pdu[len(pdu) - auth_len :]

    def context_items(self, pdu):
        n = pdu[24]
        items, off = [], 28
        for _ in range(n):
            ctx_id, n_ts = struct.unpack("<HB", pdu[off : off + 3])
            iid = pdu[off + 4 : off + 20]
            syntaxes = [pdu[off + 24 + 20 * i : off + 44 + 20 * i] for i in range(n_ts)]
            items.append((ctx_id, iid, syntaxes))
            off += 24 + 20 * n_ts
        return items

    def context_reply(self, ptype, call_id, items, token=None):
        body = struct.pack("<HHI", self.max_send, self.server.max_frag, 0x53F0)
        port = b"%d\x00" % self.sock.getsockname()[1]
        body += struct.pack("<H", len(port)) + port
        body += b"\x00" * ((4 - (16 + len(body)) % 4) % 4)
        body += struct.pack("<BBH", len(items), 0, 0)
        for ctx_id, iid, syntaxes in items:
            if NDR in syntaxes:
                self.contexts[ctx_id] = iid
                body += struct.pack("<HH", 0, 0) + NDR
            else:
                body += struct.pack("<HH", 2, 2) + b"\x00" * 20
        auth = b""
        if token is not None:
            pad = (4 - (16 + len(body)) % 4) % 4
            body += b"\x00" * pad
            auth = struct.pack("<BBBBI", 10, self.sc.level, pad, 0, self.sc.ctx_id) + token
        total = 16 + len(body) + len(auth)
        self.send(self.header(ptype, FIRST | LAST, total, len(token or b""), call_id) + body + auth)

    # --- NTLM acceptance -------------------------------------------------------------------

    def challenge(self, negotiate):
        self.sc.negotiate = negotiate
        asked = struct.unpack("<I", negotiate[12:16])[0]
        offered = (ntlm.NTLMSSP_NEGOTIATE_UNICODE | ntlm.NTLMSSP_NEGOTIATE_SIGN | ntlm.NTLMSSP_NEGOTIATE_SEAL
                   | ntlm.NTLMSSP_NEGOTIATE_NTLM | ntlm.NTLMSSP_NEGOTIATE_ALWAYS_SIGN
                   | ntlm.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NTLMSSP_NEGOTIATE_TARGET_INFO
                   | ntlm.NTLMSSP_NEGOTIATE_VERSION | ntlm.NTLMSSP_NEGOTIATE_128 | ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH
                   | ntlm.NTLMSSP_NEGOTIATE_56)
        flags = (asked & offered) | ntlm.NTLMSSP_NEGOTIATE_TARGET_INFO
        self.sc.server_challenge = os.urandom(8)
        name = self.server.domain.encode("utf-16le")
        info = struct.pack("<HH", 2, len(name)) + name
        info += struct.pack("<HH", 1, 12) + "EMULAT".encode("utf-16le")
        # Windows also names itself and its domain in DNS form; impacket's client needs both.
        for kind, text in ((4, self.server.domain.lower() + ".test"), (3, "emulat." + self.server.domain.lower() + ".test")):
            info += struct.pack("<HH", kind, 2 * len(text)) + text.encode("utf-16le")
        # A timestamp obliges the client to send a MIC (MS-NLMP 3.1.5.1.2), as Windows does.
        info += struct.pack("<HHQ", 7, 8, int((time.time() + 11644473600) * 10**7)) + b"\x00" * 4
        fixed = 56
        msg = b"NTLMSSP\x00" + struct.pack("<I", 2)
        msg += struct.pack("<HHI", len(name), len(name), fixed) + struct.pack("<I", flags)
        msg += self.sc.server_challenge + b"\x00" * 8
        msg += struct.pack("<HHI", len(info), len(info), fixed + len(name)) + b"\x0a\x00\x61\x4a\x00\x00\x00\x0f"
        msg += name + info
        self.sc.challenge_msg = msg
        return msg

    def authenticate(self, token):
        msg = ntlm.NTLMAuthChallengeResponse()
        msg.fromString(token)
        user = msg["user_name"].decode("utf-16le")
        domain = msg["domain_name"].decode("utf-16le")
        flags = msg["flags"]
        nt = msg["ntlm"]
        rec = {"user": user, "domain": domain, "flags": flags, "proof": "bad", "mic": "absent"}
        self.rec["auth"] = rec
        owf = ntlm.NTOWFv2(self.server.user, self.server.password, self.server.domain)
        if user.upper() != self.server.user.upper() or domain.upper() != self.server.domain.upper():
            rec["proof"] = "unknown user"
            return
        proof, temp = nt[:16], nt[16:]
        if len(nt) < 48 or hmac_md5(owf, self.sc.server_challenge + temp) != proof:
            return
        rec["proof"] = "ok"
        base = hmac_md5(owf, proof)
        if flags & ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH:
            exported = ARC4.new(base).decrypt(msg["session_key"])
        else:
            exported = base
        pairs = av_pairs(temp[28:])
        if 6 in pairs and struct.unpack("<I", pairs[6])[0] & 2:
            zeroed = token[:72] + b"\x00" * 16 + token[88:]
            good = hmac_md5(exported, self.sc.negotiate + self.sc.challenge_msg + zeroed) == token[72:88]
            rec["mic"] = "ok" if good else "bad"
            if not good:
                return
        # Without the MIC flag there is no MIC to check: MS-NLMP makes it a SHOULD, Windows
        # accepts its absence, and impacket's client sends none. The log says "absent".
        self.sc.flags = flags
        self.sc.client_sign = ntlm.SIGNKEY(flags, exported, "Client")
        self.sc.server_sign = ntlm.SIGNKEY(flags, exported, "Server")
        self.sc.client_seal = ARC4.new(ntlm.SEALKEY(flags, exported, "Client")).encrypt
        self.sc.server_seal = ARC4.new(ntlm.SEALKEY(flags, exported, "Server")).encrypt
        self.sc.auth_ok = True

    # --- PDUs ----------------------------------------------------------------------------

    def handle(self, pdu):
        ptype, flags = pdu[2], pdu[3]
        call_id = struct.unpack("<I", pdu[12:16])[0]
        auth_len = struct.unpack("<H", pdu[10:12])[0]
        if ptype in (BIND, ALTER):
            self.round_trip()
            items = self.context_items(pdu)
            record = [{"iid": iid.hex(), "ndr": NDR in s} for _, iid, s in items]
            client_max_recv = struct.unpack("<H", pdu[18:20])[0]
            kind = BIND_ACK if ptype == BIND else ALTER_RESP
            if ptype == BIND:
                self.max_send = min(client_max_recv, self.server.max_frag)
                self.rec["binds"].append(record)
            else:
                self.rec["alter_contexts"].append(record)
            if not auth_len:
                self.context_reply(kind, call_id, items)
                return
            trailer, token = self.trailer(pdu)
            if trailer["auth_type"] != 10:
                nak = struct.pack("<HB", 8, 0)
                self.send(self.header(BIND_NAK, FIRST | LAST, 16 + len(nak), 0, call_id) + nak)
                return
            self.sc = SecContext(trailer["auth_ctx_id"], trailer["auth_level"])
            self.contexts_by_auth[self.sc.ctx_id] = self.sc
            self.rec["level"] = self.sc.level
            self.rec["security_contexts"] = len(self.contexts_by_auth)
            self.context_reply(kind, call_id, items, self.challenge(token))
        elif ptype == AUTH3:
            trailer, token = self.trailer(pdu)
            self.sc = self.contexts_by_auth.get(trailer["auth_ctx_id"], SecContext(0, 0))
            self.authenticate(token)
        elif ptype == REQUEST:
            self.request(pdu, flags, call_id, auth_len)

    def round_trip(self):
        """Counts an exchange the client waits for (bind, alter_context, a whole request) and
        delays it by --latency-ms, as a distant server would."""
        self.rec["round_trips"] = self.rec.get("round_trips", 0) + 1
        if self.server.latency:
            time.sleep(self.server.latency)

    def request(self, pdu, flags, call_id, auth_len):
        self.rec["fragments_in"] += 1
        ctx_id, opnum = struct.unpack("<HH", pdu[20:24])
        start = 24
        obj = None
        if flags & OBJECT:
            obj, start = pdu[24:40], 40
        if auth_len:
            self.sc = self.contexts_by_auth.get(self.trailer(pdu)[0]["auth_ctx_id"], SecContext(0, 0))
        if self.contexts_by_auth:
            if not self.sc.auth_ok or not auth_len:
                self.fault(call_id, ACCESS_DENIED)
                return
            trailer, signature = self.trailer(pdu)
            end = len(pdu) - auth_len - 8
            plain = pdu[:start]
            body = pdu[start:end]
            if self.sc.level == 6:
                body = self.sc.client_seal(body)
            plain += body + pdu[end : len(pdu) - auth_len]
            expected = ntlm.MAC(self.sc.flags, self.sc.client_seal, self.sc.client_sign, self.sc.recv_seq, plain).getData()
            self.sc.recv_seq += 1
            if expected != signature:
                self.rec["bad_signatures"] += 1
                self.fault(call_id, ACCESS_DENIED)
                return
            self.rec["verified_signatures"] += 1
            stub = body[: len(body) - trailer["auth_pad_len"]]
        else:
            stub = pdu[start:]
        self.pending[call_id] = self.pending.get(call_id, b"") + stub
        if not flags & LAST:
            return
        self.round_trip()
        stub = self.pending.pop(call_id)
        self.rec["requests"].append({"opnum": opnum, "iid": self.contexts.get(ctx_id, b"").hex(),
                                     "stub_len": len(stub), "ipid": obj.hex() if obj else None})
        try:
            result = self.dispatch(self.contexts.get(ctx_id), opnum, obj, stub)
        except Exception as e:  # a stub impacket cannot decode: what Windows faults as bad stub data
            self.rec.setdefault("errors", []).append(repr(e))
            result = BAD_STUB_DATA
        self.rec["live_objects"] = sum(1 for o in self.server.objects.by_ipid.values() if o[0] != "remunknown")
        if isinstance(result, int):
            self.fault(call_id, result)
        else:
            self.respond(call_id, ctx_id, result)

    def fault(self, call_id, status):
        body = struct.pack("<IHBBII", 0, 0, 0, 0, status, 0)
        self.send(self.header(FAULT, FIRST | LAST | 0x20, 16 + len(body), 0, call_id) + body)

    def respond(self, call_id, ctx_id, stub):
        signed = self.sc.level >= 5
        room = self.max_send - 24 - (8 + 16 if signed else 0)
        room -= room % 16
        chunks = [stub[i : i + room] for i in range(0, len(stub), room)] or [b""]
        for i, chunk in enumerate(chunks):
            flags = (FIRST if i == 0 else 0) | (LAST if i == len(chunks) - 1 else 0)
            body = struct.pack("<IHBB", len(stub) - i * room, ctx_id, 0, 0)
            if not signed:
                self.send(self.header(RESPONSE, flags, 24 + len(chunk), 0, call_id) + body + chunk)
                continue
            pad = (16 - len(chunk) % 16) % 16
            data = chunk + b"\x00" * pad
            frag_len = 24 + len(data) + 8 + 16
            trailer = struct.pack("<BBBBI", 10, self.sc.level, pad, 0, self.sc.ctx_id)
            plain = self.header(RESPONSE, flags, frag_len, 16, call_id) + body + data + trailer
            sealed = self.sc.server_seal(data) if self.sc.level == 6 else data
            signature = ntlm.MAC(self.sc.flags, self.sc.server_seal, self.sc.server_sign, self.sc.send_seq, plain).getData()
            self.sc.send_seq += 1
            self.rec["fragments_out"] += 1
            if self.server.corrupt == self.rec["fragments_out"]:
                signature = signature[:8] + bytes([signature[8] ^ 1]) + signature[9:]
            self.send(plain[:24] + sealed + trailer + signature)

    # --- calls ---------------------------------------------------------------------------

    def objref(self, iid, ipid):
        ref = OBJREF_STANDARD()
        ref["iid"] = iid
        ref["std"]["flags"] = 0
        ref["std"]["cPublicRefs"] = 5
        ref["std"]["oxid"] = OXID
        ref["std"]["oid"] = int.from_bytes(ipid[:4], "little")
        ref["std"]["ipid"] = ipid
        # An empty resolver address: the client already holds the OXID's bindings.
        ref["saResAddr"] = struct.pack("<HH", 4, 2) + b"\x00" * 8
        return ref.getData()

    @staticmethod
    def pointer(data):
        return struct.pack("<III", 0x20000, len(data), len(data)) + data + b"\x00" * ((4 - len(data) % 4) % 4)

    @staticmethod
    def orpcthat():
        """ORPCTHAT with no flags and no extensions."""
        return struct.pack("<II", 0, 0)

    def dispatch(self, iid, opnum, ipid, stub):
        objects = self.server.objects
        # An ORPC call goes to the object its IPID names; the presentation context need not be
        # the interface's (aiowmi calls ExecQuery on the context it bound for the login), and
        # Windows dispatches by IPID, so the emulator does too.
        known = objects.by_ipid.get(ipid)
        if known:
            by_kind = {"login": IID_IWbemLevel1Login, "services": IID_IWbemServices, "enum": IID_IEnumWbemClassObject,
                       "fetch": IID_IWbemFetchSmartEnum, "smart": IID_IWbemWCOSmartEnum, "remunknown": IID_REM_UNKNOWN2}
            if iid != by_kind[known[0]][:16]:
                self.rec["context_not_the_interface"] = self.rec.get("context_not_the_interface", 0) + 1
            iid = by_kind[known[0]][:16]
        if iid == IID_REMOTE_SCM_ACTIVATOR and opnum == 4 and self.role == "activation":
            call = RemoteCreateInstance(stub)
            self.rec["activation_objref"] = b"".join(call["pActProperties"]["abData"])[:40].hex()
            minor = call["ORPCthis"]["version"]["MinorVersion"]
            self.rec.setdefault("com_versions", []).append(minor)
            if minor > self.server.com_minor:
                # What a server older than the client's COM version answers (MS-DCOM 3.2.4.1.1).
                return self.orpcthat() + struct.pack("<II", 0, RPC_E_VERSION_MISMATCH)
            login = objects.add("login")
            binding = "127.0.0.1[%d]" % self.server.object_port
            blob, _ = reply_blob(self.objref(IID_IWbemLevel1Login[:16], login), binding)
            custom = OBJREF_CUSTOM()
            custom["iid"] = IID_IActivationPropertiesOut[:16]
            custom["clsid"] = CLSID_ActivationPropertiesOut
            custom["cbExtension"] = 0
            custom["ObjectReferenceSize"] = len(blob) + 8
            custom["pObjectData"] = blob
            resp = RemoteCreateInstanceResponse()
            resp["ORPCthat"]["flags"] = 0
            resp["ORPCthat"]["extensions"] = NULL
            data = custom.getData()
            resp["ppActProperties"]["ulCntData"] = len(data)
            resp["ppActProperties"]["abData"] = list(data)
            resp["ErrorCode"] = 0
            return resp.getData()
        if self.role != "object":
            return UNK_IF
        entry = objects.by_ipid.get(ipid)
        if iid == IID_IWbemLevel1Login[:16] and opnum == 6 and entry and entry[0] == "login":
            call = IWbemLevel1Login_NTLMLogin(stub)
            namespace = call["wszNetworkResource"].rstrip("\x00").replace("\\", "/").lower()
            if namespace not in ("//./root/cimv2", "root/cimv2"):
                return self.orpcthat() + struct.pack("<II", 0, WBEM_E_INVALID_NAMESPACE)
            services = objects.add("services")
            return self.orpcthat() + self.pointer(self.objref(IID_IWbemServices[:16], services)) + struct.pack("<I", 0)
        if iid == IID_IWbemServices[:16] and opnum == 20 and entry and entry[0] == "services":
            call = IWbemServices_ExecQuery(stub)
            query = call["strQuery"]["asData"].rstrip("\x00")
            # `SELECT *` or a property list; the emulator always returns whole objects, as a
            # WMI provider may (unselected properties are then simply not read by the client).
            m = re.match(r"(?i)\s*select\s+(?:\*|\w+(?:\s*,\s*\w+)*)\s+from\s+(\w+)\s*$", query)
            if not m or m.group(1).lower() != "win32_utctime":
                return self.orpcthat() + struct.pack("<II", 0, WBEM_E_INVALID_CLASS)
            enum = objects.add("enum", {"left": self.server.rows, "flags": call["lFlags"]})
            return self.orpcthat() + self.pointer(self.objref(IID_IEnumWbemClassObject[:16], enum)) + struct.pack("<I", 0)
        if iid == IID_IEnumWbemClassObject[:16] and opnum == 4 and entry and entry[0] == "enum":
            call = IEnumWbemClassObject_Next(stub)
            n = min(call["uCount"], entry[1]["left"])
            entry[1]["left"] -= n
            out = self.orpcthat() + struct.pack("<III", call["uCount"], 0, n)
            out += b"".join(struct.pack("<I", 0x20004 + 4 * i) for i in range(n))
            for _ in range(n):
                obj = self.server.instance
                out += struct.pack("<II", len(obj), len(obj)) + obj + b"\x00" * ((4 - len(obj) % 4) % 4)
            out += struct.pack("<II", n, 0 if n == call["uCount"] else WBEM_S_FALSE)
            return out
        if iid in (IID_REM_UNKNOWN, IID_REM_UNKNOWN2) and opnum == 3:
            call = RemQueryInterface(stub)
            target = objects.by_ipid.get(call["ripid"])
            out = pad_to(self.orpcthat() + struct.pack("<II", 0x20000, call["cIids"]), 8)
            for asked in call["iids"]:
                asked = asked["Data"] if not isinstance(asked, bytes) else asked
                smart_ok = not self.server.no_smart_enum
                if target and target[0] == "enum" and asked == IID_IWbemFetchSmartEnum[:16] and smart_ok:
                    fetch = objects.add("fetch", target[1])
                    std = struct.pack("<IIQQ", 0, 5, OXID, int.from_bytes(fetch[:4], "little")) + fetch
                    out = pad_to(pad_to(out, 8) + struct.pack("<I", 0), 8) + std
                else:
                    out = pad_to(pad_to(out, 8) + struct.pack("<I", 0x80004002), 8) + b"\x00" * 40
            return out + struct.pack("<I", 0)
        if iid == IID_IWbemFetchSmartEnum[:16] and opnum == 3 and entry and entry[0] == "fetch":
            IWbemFetchSmartEnum_GetSmartEnum(stub)
            smart = objects.add("smart", entry[1])
            self.rec["smart_enums"] = self.rec.get("smart_enums", 0) + 1
            return self.orpcthat() + self.pointer(self.objref(IID_IWbemWCOSmartEnum[:16], smart)) + struct.pack("<I", 0)
        if iid == IID_IWbemWCOSmartEnum[:16] and opnum == 3 and entry and entry[0] == "smart":
            # proxyGUID is a top-level [in] REFGUID, a reference pointer: the GUID travels without
            # a referent id (C706 14.3.11.3). impacket's IWbemWCOSmartEnum_Next declares it as a
            # unique pointer, so its decoder is not used here.
            proxy = stub[32:48]
            timeout, count = struct.unpack("<iI", stub[48:56])
            call = {"uCount": count}
            n = min(call["uCount"], entry[1]["left"])
            entry[1]["left"] -= n
            sent = self.server.proxies.setdefault(proxy, set())
            with_class, without = self.server.blocks
            batch = []
            for _ in range(n):
                first = self.server.class_id not in sent
                sent.add(self.server.class_id)
                batch.append((self.server.class_id, with_class if first else without, first))
            self.rec["noclass_objects"] = self.rec.get("noclass_objects", 0) + sum(1 for b in batch if not b[2])
            buf = wbemdata(batch) if n else b""
            hresult = 0 if n == call["uCount"] else WBEM_S_FALSE
            out = self.orpcthat() + struct.pack("<II", n, len(buf))
            out += struct.pack("<II", 0x20000, len(buf)) + pad_to(buf, 4) if buf else struct.pack("<I", 0)
            return out + struct.pack("<I", hresult)
        if iid in (IID_REM_UNKNOWN, IID_REM_UNKNOWN2) and opnum == 5:
            call = RemRelease(stub)
            for ref in call["InterfaceRefs"]:
                objects.by_ipid.pop(ref["ipid"], None)
            return self.orpcthat() + struct.pack("<I", 0)
        known = (IID_IWbemLevel1Login, IID_IWbemServices, IID_IEnumWbemClassObject, IID_IWbemFetchSmartEnum,
                 IID_IWbemWCOSmartEnum)
        if iid not in [k[:16] for k in known] + [IID_REM_UNKNOWN, IID_REM_UNKNOWN2]:
            return UNK_IF
        return OP_RNG_ERROR


class Server:
    def __init__(self, args):
        self.user, self.domain, self.password = args.user, args.domain, args.password
        self.max_frag = args.max_frag
        self.rows = args.rows
        self.corrupt = args.corrupt_signature
        self.com_minor = args.com_minor
        self.no_smart_enum = args.no_smart_enum
        self.latency = args.latency_ms / 1000
        self.log_on_close = args.log_on_close
        self.log = args.log
        self.objects = Objects()
        self.instance = open(os.path.join(args.testdata, "fixture_0.objref.bin"), "rb").read()
        # The encoding unit inside the OBJREF_CUSTOM (48 bytes of OBJREF header before it).
        self.blocks = split_instance(self.instance[48:])
        self.class_id = os.urandom(16)
        self.proxies = {}
        self.listeners = {}
        for role in ("activation", "object"):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            self.listeners[role] = s
        self.object_port = self.listeners["object"].getsockname()[1]

    def serve(self, role):
        listener = self.listeners[role]
        while True:
            sock, _ = listener.accept()
            sock.settimeout(30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=Conn(sock, self, role).run, daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--testdata", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--user", default="alice")
    p.add_argument("--domain", default="LAB")
    p.add_argument("--password", default="Secret-123")
    p.add_argument("--lifetime", type=float, default=30)
    p.add_argument("--max-frag", type=int, default=5840)
    p.add_argument("--rows", type=int, default=5)
    p.add_argument("--corrupt-signature", type=int, default=0)
    p.add_argument("--com-minor", type=int, default=7, help="highest COM minor version (5.x) accepted")
    p.add_argument("--no-smart-enum", action="store_true", help="enumerators have no IWbemFetchSmartEnum")
    p.add_argument("--latency-ms", type=float, default=0, help="delay before answering each request")
    p.add_argument("--log-on-close", action="store_true",
                   help="write the log when a connection closes, not per PDU (long benchmark runs)")
    args = p.parse_args()
    server = Server(args)
    write_log(args.log)
    for role in server.listeners:
        threading.Thread(target=server.serve, args=(role,), daemon=True).start()
    ports = {f"{role}_port": s.getsockname()[1] for role, s in server.listeners.items()}
    print(json.dumps(ports), flush=True)
    time.sleep(args.lifetime)
    write_log(args.log)


if __name__ == "__main__":
    main()
