"""Enumerates classes from a WS-Man endpoint with pypsrp's WSMan client and prints what arrived.

Used by tests/interop_pypsrp.rs as an independent client: pypsrp builds the requests, handles
authentication (Basic, NTLM with message encryption) and parses the responses with ElementTree.
Output (stdout, JSON): {"classes": {Spec: [instance]}, "get": {Spec: instance}, "requests": N}
where an instance is {Property: [text or null, ...]}.
"""

import argparse
import json
import sys
import xml.etree.ElementTree as ET

from pypsrp.wsman import SelectorSet, WSMan

NS_ENUM = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
NS_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_CIM = "http://schemas.dmtf.org/wbem/wscim/1/common"
WMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"


def local(tag):
    return tag.rsplit("}", 1)[-1]


def instance(item):
    """Property name -> list of values (text, or None for xsi:nil), in document order."""
    props = {}
    for child in item:
        if child.get("{%s}nil" % NS_XSI) == "true":
            value = None
        elif len(child):
            # cim:Datetime (typed items) or Datetime (fragments) wrap the value.
            value = child[0].text or ""
        else:
            value = child.text or ""
        props.setdefault(local(child.tag), []).append(value)
    return props


def items_of(body, container):
    """Items of an EnumerateResponse/PullResponse in either namespace, and whether it ended."""
    response = body.find("{%s}%s" % (NS_ENUM, container))
    if response is None:
        raise SystemExit("no %s in the response" % container)
    items = []
    ended = False
    for ns in (NS_WSMAN, NS_ENUM):
        found = response.find("{%s}Items" % ns)
        if found is not None:
            items.extend(list(found))
        ended = ended or response.find("{%s}EndOfSequence" % ns) is not None
    ctx = response.find("{%s}EnumerationContext" % NS_ENUM)
    return items, ended, (ctx.text if ctx is not None else None)


def enumerate_class(wsman, cls, properties, where, max_elements):
    body = ET.Element("{%s}Enumerate" % NS_ENUM)
    ET.SubElement(body, "{%s}OptimizeEnumeration" % NS_WSMAN)
    ET.SubElement(body, "{%s}MaxElements" % NS_WSMAN).text = str(max_elements)
    if properties or where:
        uri = WMI + "*"
        f = ET.SubElement(body, "{%s}Filter" % NS_WSMAN, Dialect=WQL)
        f.text = "SELECT %s FROM %s" % (",".join(properties) or "*", cls)
        if where:
            f.text += " WHERE " + where
    else:
        uri = WMI + cls
    resp = wsman.enumerate(uri, body)
    items, ended, ctx = items_of(resp, "EnumerateResponse")
    requests = 1
    while not ended:
        pull = ET.Element("{%s}Pull" % NS_ENUM)
        ET.SubElement(pull, "{%s}EnumerationContext" % NS_ENUM).text = ctx
        ET.SubElement(pull, "{%s}MaxElements" % NS_ENUM).text = str(max_elements)
        resp = wsman.pull(uri, pull)
        page, ended, ctx = items_of(resp, "PullResponse")
        items.extend(page)
        requests += 1
    out = []
    for item in items:
        expected = "XmlFragment" if properties else cls
        if local(item.tag) != expected:
            raise SystemExit("unexpected item element %s" % item.tag)
        if not properties and item.tag != "{%s%s}%s" % (WMI, cls, cls):
            raise SystemExit("typed item in the wrong namespace: %s" % item.tag)
        out.append(instance(item))
    return out, requests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ssl", action="store_true")
    ap.add_argument("--ca", help="PEM CA bundle to verify the server certificate with (default: no check)")
    ap.add_argument("--auth", default="basic")
    ap.add_argument("--encryption", default="auto")
    ap.add_argument("--user", default=None)
    ap.add_argument("--password", default=None)
    ap.add_argument("--cert-pem", help="client certificate (PEM) for --auth certificate")
    ap.add_argument("--cert-key-pem", help="its private key (PEM)")
    ap.add_argument("--max-elements", type=int, default=20)
    ap.add_argument("--class", dest="classes", action="append", default=[],
                    help="Class, or Class:Prop1,Prop2[:condition] for a WQL query")
    ap.add_argument("--get", action="append", default=[], help="Class:Key=Value for a WS-Transfer Get")
    args = ap.parse_args()
    extra = {}
    if args.auth == "certificate":
        extra = {"certificate_pem": args.cert_pem, "certificate_key_pem": args.cert_key_pem}
    wsman = WSMan(
        args.host,
        port=args.port,
        ssl=args.ssl,
        auth=args.auth,
        encryption=args.encryption,
        username=args.user,
        password=args.password,
        cert_validation=args.ca or False,
        connection_timeout=10,
        read_timeout=20,
        operation_timeout=10,
        no_proxy=True,
        **extra,
    )
    result = {"classes": {}, "get": {}, "requests": 0}
    with wsman:
        for spec in args.classes:
            cls, _, rest = spec.partition(":")
            props, _, where = rest.partition(":")
            properties = [p for p in props.split(",") if p]
            instances, requests = enumerate_class(wsman, cls, properties, where, args.max_elements)
            result["classes"][spec] = instances
            result["requests"] += requests
        for spec in args.get:
            cls, _, selector = spec.partition(":")
            key, _, value = selector.partition("=")
            selectors = SelectorSet()
            selectors.add_option(key, value)
            body = wsman.get(WMI + cls, selector_set=selectors)
            items = list(body)
            if len(items) != 1 or items[0].tag != "{%s%s}%s" % (WMI, cls, cls):
                raise SystemExit("unexpected Get response body for %s" % spec)
            result["get"][spec] = instance(items[0])
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
