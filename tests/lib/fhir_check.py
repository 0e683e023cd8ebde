#!/usr/bin/env python3
"""Check `lfsfs fhir` output field by field (python3 stdlib only).

usage: fhir_check.py NDJSON METADATA_JSON [--skipped RAW_KEY]...

There is no FHIR validator here, so this states the FHIR R4 facts that apply
to the resources lfsfs writes and checks them independently of the C code:

  - NDJSON: UTF-8, every line one compact JSON object ending in "\\n", no
    blank lines; one line per metadata.json entry that is not --skipped;
    lines sorted by repository path (byte order of the UTF-8 path)
  - FHIR JSON: no null, empty string, empty array or empty object
  - DocumentReference (R4): known elements only; resourceType;
    id [A-Za-z0-9\\-\\.]{1,64}, unique, = uuid5(namespace, path);
    status current|superseded|entered-in-error (lfsfs: current);
    content 1..*, each with an attachment
  - Attachment (R4): known elements; contentType a media type (code: no
    leading/trailing/double spaces); url a uri (no whitespace);
    size unsignedInt 0..4294967295; hash base64 of a SHA-1 (20 bytes), so a
    sha256 never appears there; title
  - Extension: absolute url, exactly one value[x]
  - Reference: "Type/id[/_history/vid]", absolute http(s) URL ending so, or
    urn:uuid; subject one of Patient|Group|Practitioner|Device
  - date an instant (date, time, seconds and a zone)

and against the input: url = remote_url, title = basename, contentType from
the documented table (or the entry's content_type), size in attachment.size
or (above 4294967295) in the size extension, sha256/md5/etag extensions iff
recorded, hash iff sha1, subject from patient, context.related from specimen,
date/description copied, identifier = the path.
"""
import base64
import json
import re
import sys
import uuid

NS = uuid.UUID("9f3ede07-d03e-58b7-9562-139b3f34ffd4")
BASE = "https://lfsfs.invalid/fhir/"
EXT_SHA256 = BASE + "StructureDefinition/sha256"
EXT_MD5 = BASE + "StructureDefinition/md5"
EXT_ETAG = BASE + "StructureDefinition/etag"
EXT_SIZE = BASE + "StructureDefinition/size"
SID_PATH = BASE + "sid/path"
UNSIGNED_MAX = 4294967295

DOCREF_ELEMENTS = {
    "resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
    "extension", "modifierExtension", "masterIdentifier", "identifier", "status",
    "docStatus", "type", "category", "subject", "date", "author", "authenticator",
    "custodian", "relatesTo", "description", "securityLabel", "content", "context",
}
CONTENT_ELEMENTS = {"id", "extension", "modifierExtension", "attachment", "format"}
ATTACHMENT_ELEMENTS = {"id", "extension", "contentType", "language", "data", "url", "size",
                       "hash", "title", "creation"}
CONTEXT_ELEMENTS = {"id", "extension", "modifierExtension", "encounter", "event", "period",
                    "facilityType", "practiceSetting", "sourcePatientInfo", "related"}
REFERENCE_ELEMENTS = {"id", "extension", "reference", "type", "identifier", "display"}
IDENTIFIER_ELEMENTS = {"id", "extension", "use", "type", "system", "value", "period",
                       "assigner"}

ID_RE = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
REF_RE = re.compile(r"((https?)://\S+/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})"
                    r"(/_history/[A-Za-z0-9\-\.]{1,64})?")
URN_UUID_RE = re.compile(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                         r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
INSTANT_RE = re.compile(r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-"
                        r"(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:"
                        r"([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")
MIME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/"
                     r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(;[ -~]*)?")
CODE_RE = re.compile(r"[^\s]+( [^\s]+)*")
B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
SUBJECT_TYPES = {"Patient", "Group", "Practitioner", "Device"}

# docs/FHIR.md, "Content types": the last extension, case-insensitive.
CONTENT_TYPES = {
    "gz": "application/gzip", "bgz": "application/gzip", "tgz": "application/gzip",
    "bz2": "application/x-bzip2", "xz": "application/x-xz", "zst": "application/zstd",
    "zip": "application/zip", "tar": "application/x-tar",
    "bam": "application/octet-stream", "bai": "application/octet-stream",
    "cram": "application/octet-stream", "crai": "application/octet-stream",
    "bcf": "application/octet-stream", "csi": "application/octet-stream",
    "tbi": "application/octet-stream",
    "vcf": "text/plain", "bed": "text/plain", "fastq": "text/plain", "fq": "text/plain",
    "fasta": "text/plain", "fa": "text/plain", "fna": "text/plain", "sam": "text/plain",
    "gff": "text/plain", "gff3": "text/plain", "gtf": "text/plain",
    "txt": "text/plain", "log": "text/plain", "md": "text/markdown", "csv": "text/csv",
    "tsv": "text/tab-separated-values", "html": "text/html", "htm": "text/html",
    "json": "application/json", "xml": "application/xml", "pdf": "application/pdf",
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "svg": "image/svg+xml", "tif": "image/tiff", "tiff": "image/tiff",
    "dcm": "application/dicom", "dicom": "application/dicom",
    "h5": "application/x-hdf5", "hdf5": "application/x-hdf5",
    "parquet": "application/vnd.apache.parquet",
}

errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def normalize(path):
    return "/".join(c for c in path.split("/") if c not in ("", "."))


def content_type(path):
    base = path.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    if dot <= 0 or dot == len(base) - 1:
        return "application/octet-stream"
    return CONTENT_TYPES.get(base[dot + 1:].lower(), "application/octet-stream")


def json_rules(where, v):
    if v is None:
        err(where, "null value")
    elif isinstance(v, str):
        if v == "":
            err(where, "empty string")
    elif isinstance(v, list):
        if not v:
            err(where, "empty array")
        for i, x in enumerate(v):
            json_rules(f"{where}[{i}]", x)
    elif isinstance(v, dict):
        if not v:
            err(where, "empty object")
        for k, x in v.items():
            json_rules(f"{where}.{k}", x)


def known(where, obj, allowed):
    if not isinstance(obj, dict):
        err(where, f"not an object: {obj!r}")
        return False
    for k in obj:
        if k not in allowed:
            err(where, f"unknown element {k!r}")
    return True


def reference_ok(ref, types):
    if not isinstance(ref, str):
        return False
    if URN_UUID_RE.fullmatch(ref):
        return True
    m = REF_RE.fullmatch(ref)
    return bool(m) and (types is None or m.group(3) in types)


def expected_reference(value, default_type):
    if ID_RE.fullmatch(value):
        return f"{default_type}/{value}"
    return value


def check_extensions(where, exts):
    out = {}
    if not isinstance(exts, list):
        err(where, "extension is not an array")
        return out
    for e in exts:
        if not isinstance(e, dict) or not isinstance(e.get("url"), str):
            err(where, f"extension without url: {e!r}")
            continue
        if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:\S+$", e["url"]):
            err(where, f"extension url not absolute: {e['url']!r}")
        values = [k for k in e if re.fullmatch(r"value[A-Z][A-Za-z0-9]*", k)]
        if len(values) != 1:
            err(where, f"extension {e['url']} has {len(values)} value[x]")
            continue
        for k in e:
            if k not in ("id", "url") and k not in values:
                err(where, f"extension {e['url']} has unknown element {k!r}")
        if e["url"] in out:
            err(where, f"extension {e['url']} repeated")
        out[e["url"]] = (values[0], e[values[0]])
    return out


def check_resource(where, r, path, ent, ids):
    json_rules(where, r)
    if not known(where, r, DOCREF_ELEMENTS):
        return
    if r.get("resourceType") != "DocumentReference":
        err(where, f"resourceType {r.get('resourceType')!r}")
    rid = r.get("id")
    if not isinstance(rid, str) or not ID_RE.fullmatch(rid):
        err(where, f"id {rid!r} does not match [A-Za-z0-9-.]{{1,64}}")
    elif rid != str(uuid.uuid5(NS, path)):
        err(where, f"id {rid} is not uuid5(ns, {path!r}) = {uuid.uuid5(NS, path)}")
    if rid in ids:
        err(where, f"id {rid} not unique (also {ids[rid]!r})")
    ids[rid] = path
    if r.get("status") != "current":
        err(where, f"status {r.get('status')!r}, expected 'current'")
    idents = r.get("identifier")
    if idents != [{"system": SID_PATH, "value": path}]:
        err(where, f"identifier {idents!r}")
    for i in idents if isinstance(idents, list) else []:
        known(where + ".identifier", i, IDENTIFIER_ELEMENTS)

    # subject <- patient
    patient = ent.get("patient") or None
    if patient is None:
        if "subject" in r:
            err(where, f"subject {r['subject']!r} without a patient")
    else:
        subj = r.get("subject")
        if known(where + ".subject", subj, REFERENCE_ELEMENTS):
            ref = subj.get("reference")
            if not reference_ok(ref, SUBJECT_TYPES):
                err(where, f"subject.reference {ref!r} is not a Patient/Group/"
                           "Practitioner/Device reference")
            if ref != expected_reference(patient, "Patient"):
                err(where, f"subject.reference {ref!r} for patient {patient!r}")

    # context.related <- specimen
    specimen = ent.get("specimen") or None
    if specimen is None:
        if "context" in r:
            err(where, f"context {r['context']!r} without a specimen")
    else:
        ctx = r.get("context")
        if known(where + ".context", ctx, CONTEXT_ELEMENTS):
            rel = ctx.get("related")
            if not isinstance(rel, list) or len(rel) != 1:
                err(where, f"context.related {rel!r}")
            elif known(where + ".context.related[0]", rel[0], REFERENCE_ELEMENTS):
                ref = rel[0].get("reference")
                if not reference_ok(ref, None):
                    err(where, f"context.related reference {ref!r} malformed")
                if ref != expected_reference(specimen, "Specimen"):
                    err(where, f"context.related reference {ref!r} for specimen {specimen!r}")

    for key in ("date", "description"):
        if (ent.get(key) or None) != r.get(key):
            err(where, f"{key} {r.get(key)!r}, metadata has {ent.get(key)!r}")
    if "date" in r and not INSTANT_RE.fullmatch(r["date"]):
        err(where, f"date {r['date']!r} is not an instant")

    content = r.get("content")
    if not isinstance(content, list) or len(content) != 1:
        err(where, f"content must hold exactly one entry: {content!r}")
        return
    if not known(where + ".content[0]", content[0], CONTENT_ELEMENTS):
        return
    att = content[0].get("attachment")
    aw = where + ".content[0].attachment"
    if not known(aw, att, ATTACHMENT_ELEMENTS):
        return
    if att.get("url") != ent["remote_url"]:
        err(aw, f"url {att.get('url')!r}, metadata has {ent['remote_url']!r}")
    if not isinstance(att.get("url"), str) or re.search(r"\s", att["url"]):
        err(aw, "url is not a uri")
    title = path.rsplit("/", 1)[-1]
    if att.get("title") != title:
        err(aw, f"title {att.get('title')!r}, expected {title!r}")
    ct = att.get("contentType")
    want_ct = ent.get("content_type") or content_type(path)
    if ct != want_ct:
        err(aw, f"contentType {ct!r}, expected {want_ct!r}")
    if not isinstance(ct, str) or not MIME_RE.fullmatch(ct) or not CODE_RE.fullmatch(ct):
        err(aw, f"contentType {ct!r} is not a media type code")

    exts = check_extensions(aw, att.get("extension", []))
    size = int(ent["size"])
    if size <= UNSIGNED_MAX:
        s = att.get("size")
        if type(s) is not int or s != size:
            err(aw, f"size {s!r}, expected {size}")
        if EXT_SIZE in exts:
            err(aw, "size extension present for a size that fits unsignedInt")
    else:
        if "size" in att:
            err(aw, f"size {att['size']} exceeds R4 unsignedInt; must be omitted")
        if exts.get(EXT_SIZE) != ("valueDecimal", size):
            err(aw, f"size extension {exts.get(EXT_SIZE)!r}, expected valueDecimal {size}")
    if "size" in att and not (type(att["size"]) is int and 0 <= att["size"] <= UNSIGNED_MAX):
        err(aw, f"size {att['size']!r} is not an unsignedInt")

    sha = ent.get("sha256")
    if sha:
        sha = sha[7:] if sha.startswith("sha256:") else sha
        if exts.get(EXT_SHA256) != ("valueString", sha.lower()):
            err(aw, f"sha256 extension {exts.get(EXT_SHA256)!r}, expected {sha.lower()}")
    elif EXT_SHA256 in exts:
        err(aw, "sha256 extension without a recorded sha256")
    for key, url in (("etag", EXT_ETAG), ("md5", EXT_MD5)):
        v = ent.get(key) or None
        if v is None and url in exts:
            err(aw, f"{key} extension without a recorded {key}")
        if v is not None and exts.get(url) != ("valueString", v):
            err(aw, f"{key} extension {exts.get(url)!r}, expected {v!r}")
    unknown = set(exts) - {EXT_SHA256, EXT_MD5, EXT_ETAG, EXT_SIZE}
    if unknown:
        err(aw, f"unexpected extensions {sorted(unknown)}")

    h = att.get("hash")
    sha1 = ent.get("sha1")
    if h is not None:
        raw = base64.b64decode(h, validate=True) if B64_RE.fullmatch(h) else b""
        if len(raw) != 20:
            err(aw, f"hash {h!r} is not the base64 of a SHA-1 (R4)")
    if sha1:
        want = (base64.b64encode(bytes.fromhex(sha1)).decode() if len(sha1) == 40 else sha1)
        if h != want:
            err(aw, f"hash {h!r}, expected {want!r}")
    elif h is not None:
        err(aw, "hash set without a recorded sha1")


def main(argv):
    args, skipped = [], set()
    it = iter(argv[1:])
    for a in it:
        if a == "--skipped":
            skipped.add(next(it))
        else:
            args.append(a)
    if len(args) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    ndjson, metafile = args
    with open(metafile, "rb") as f:
        meta = json.loads(f.read().decode("utf-8"))
    expected = {}
    for raw, ent in meta.items():
        if raw in skipped:
            continue
        p = normalize(raw)
        if p in expected:
            err(metafile, f"{raw!r} normalizes to {p!r} twice; pass --skipped for the later")
        expected[p] = ent

    with open(ndjson, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        err(ndjson, f"not UTF-8: {e}")
        text = data.decode("utf-8", "replace")
    if text and not text.endswith("\n"):
        err(ndjson, "last line does not end in a newline")
    lines = text.split("\n")[:-1] if text else []
    paths, ids = [], {}
    for n, line in enumerate(lines, 1):
        where = f"{ndjson}:{n}"
        if not line.strip():
            err(where, "blank line")
            continue
        if "\r" in line:
            err(where, "carriage return in line")
        try:
            r = json.loads(line)
        except ValueError as e:
            err(where, f"not JSON: {e}")
            continue
        if line != json.dumps(r, ensure_ascii=False, separators=(",", ":")):
            err(where, "not compact JSON")
        if not isinstance(r, dict):
            err(where, "not a JSON object")
            continue
        idents = r.get("identifier") or [{}]
        path = idents[0].get("value") if isinstance(idents[0], dict) else None
        if path not in expected:
            err(where, f"resource for unexpected path {path!r}")
            continue
        if path in paths:
            err(where, f"second resource for {path!r}")
        paths.append(path)
        check_resource(f"{where} ({path})", r, path, expected[path], ids)
    missing = set(expected) - set(paths)
    if missing:
        err(ndjson, f"no resource for {sorted(missing)}")
    if len(lines) != len(expected):
        err(ndjson, f"{len(lines)} lines for {len(expected)} objects")
    if paths != sorted(paths, key=lambda p: p.encode("utf-8")):
        err(ndjson, "lines are not sorted by path")
    for e in errors:
        print(f"fhir_check: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"fhir_check: {len(lines)} DocumentReference resources ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
