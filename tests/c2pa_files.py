"""Files with provenance, made here with no network: a certificate chain generated with
``cryptography`` (root CA → intermediate CA → signer, the profile the C2PA library accepts),
images signed with Content Credentials, and JUMBF boxes built by hand for hostile cases."""

from __future__ import annotations

import datetime
import io
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image, PngImagePlugin

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
C2PA_STORE_UUID = uuid.UUID("63327061-0011-0010-8000-00AA00389B71").bytes  # "c2pa"


@dataclass
class Chain:
    signer_pem: bytes   # signer + intermediate (what goes in the manifest)
    key_pem: bytes
    root_pem: bytes     # the trust anchor


def make_chain(name: str = "Test Generator") -> Chain:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def subject(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{name} Org")])

    def cert(key, cn, issuer_key, issuer_cn, ca):
        usage = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                               "data_encipherment", "key_agreement", "key_cert_sign",
                               "crl_sign", "encipher_only", "decipher_only"), False)
        usage.update(key_cert_sign=ca, crl_sign=ca, digital_signature=not ca)
        builder = (x509.CertificateBuilder().subject_name(subject(cn))
                   .issuer_name(subject(issuer_cn)).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(**usage), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_key.public_key()), critical=False))
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    root = cert(keys[0], f"{name} Root CA", keys[0], f"{name} Root CA", True)
    middle = cert(keys[1], f"{name} Intermediate CA", keys[0], f"{name} Root CA", True)
    signer = cert(keys[2], f"{name} Signer", keys[1], f"{name} Intermediate CA", False)

    def pem(c):
        return c.public_bytes(serialization.Encoding.PEM)

    return Chain(pem(signer) + pem(middle),
                 keys[2].private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), pem(root))


def face_jpeg(seed: int = 0, size: int = 96, **save) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def sign(data: bytes, chain: Chain, source_type: str | None = "trainedAlgorithmicMedia",
         generator: str = "TestGen", actions: list[dict] | None = None,
         mime: str = "image/jpeg", parent: bytes | None = None) -> bytes:
    """``data`` with an embedded, signed C2PA manifest whose ``c2pa.created`` action states
    ``source_type`` (an IPTC digital source type), made by ``generator``. With ``parent``
    (a signed file of the same format) the manifest instead records opening that file
    (``c2pa.opened``, its manifest kept as a ``parentOf`` ingredient), then ``actions``."""
    import c2pa

    first = {"action": "c2pa.opened" if parent else "c2pa.created",
             "softwareAgent": {"name": generator}}
    if source_type and not parent:
        first["digitalSourceType"] = IPTC + source_type
    if parent:
        first["parameters"] = {"ingredientIds": ["parent"]}
    manifest = {"claim_generator_info": [{"name": generator, "version": "1.0"}],
                "title": "signed", "assertions": [
                    {"label": "c2pa.actions", "data": {"actions": [first, *(actions or [])]}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain.signer_pem,
                                                       chain.key_pem, None))
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        if parent:
            builder.add_ingredient({"title": "parent", "relationship": "parentOf",
                                    "label": "parent"}, mime, io.BytesIO(parent))
        builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


def change_pixels(jpeg: bytes) -> bytes:
    """The same file with one byte of its entropy-coded data changed (after signing)."""
    changed = bytearray(jpeg)
    changed[-20] ^= 0x55
    return bytes(changed)


def add_png_comment(png: bytes, comment: bytes = b"edited after signing") -> bytes:
    """The same PNG, still valid, with a tEXt chunk added before IEND (after signing)."""
    import struct
    import zlib

    body = b"Comment\x00" + comment
    chunk = (struct.pack(">I", len(body)) + b"tEXt" + body
             + struct.pack(">I", zlib.crc32(b"tEXt" + body)))
    end = png.rindex(b"IEND") - 4
    return png[:end] + chunk + png[end:]


def xmp_jpeg(source_type: str, seed: int = 0, comment: str = "", size: int = 96) -> bytes:
    """A JPEG whose only provenance is an XMP packet with the IPTC DigitalSourceType
    (after ``comment``, an XML comment that must not count)."""
    xmp = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{comment}<rdf:RDF xmlns:rdf="http://www.w3.org/'
           '1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/'
           f'Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:DigitalSourceType="{IPTC}{source_type}"/>'
           '</rdf:RDF></x:xmpmeta>')
    return face_jpeg(seed, size, xmp=xmp.encode())


def png_with_text(chunks: dict[str, str], seed: int = 0) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    out = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((96, 96, 3)) * 255).astype(np.uint8)).save(out, "PNG",
                                                                          pnginfo=info)
    return out.getvalue()


def camera_jpeg(make: str = "Canon", model: str = "EOS R5", software: str | None = None,
                seed: int = 3, size: int = 96) -> bytes:
    exif = Image.Exif()
    if make or model:
        exif[0x010F], exif[0x0110] = make, model
    if software:
        exif[0x0131] = software
    return face_jpeg(seed, size, exif=exif.tobytes())


def box(kind: bytes, payload: bytes, length: int | None = None) -> bytes:
    """A JUMBF/ISO box; ``length`` overrides the true one (a box that lies)."""
    return (len(payload) + 8 if length is None else length).to_bytes(4, "big") + kind + payload


def superbox(label: bytes, *children: bytes, type_uuid: bytes = C2PA_STORE_UUID,
             length: int | None = None) -> bytes:
    description = box(b"jumd", type_uuid + b"\x03" + label + b"\x00")
    return box(b"jumb", description + b"".join(children), length)


def with_jumbf(jpeg: bytes, jumbf: bytes) -> bytes:
    """``jpeg`` with ``jumbf`` in APP11 segments after SOI (the C2PA JPEG embedding: each
    segment repeats the box header after its sequence number)."""
    header, body = jumbf[:8], jumbf[8:]
    segments, sequence, step = [], 1, 65000
    for start in range(0, max(len(body), 1), step):
        payload = (b"JP" + (0x0211).to_bytes(2, "big") + sequence.to_bytes(4, "big") + header
                   + body[start:start + step])
        segments.append(b"\xff\xeb" + (len(payload) + 2).to_bytes(2, "big") + payload)
        sequence += 1
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _app11_segments(jpeg: bytes) -> list[int]:
    """Offsets of the APP11 (JUMBF) segments among the JPEG's header segments."""
    offsets, at = [], 2
    while at + 4 <= len(jpeg) and jpeg[at] == 0xFF and jpeg[at + 1] not in (0xDA, 0xD9):
        if jpeg[at + 1] == 0xEB:
            offsets.append(at)
        at += 2 + int.from_bytes(jpeg[at + 2:at + 4], "big")
    return offsets


def hostile_files(signed: bytes) -> dict[str, bytes]:
    """Manifest stores that should each give a clear per-file error: truncated, huge,
    nested deeply, and boxes whose lengths lie."""
    segments = _app11_segments(signed)
    first_end = segments[0] + 2 + int.from_bytes(signed[segments[0] + 2:segments[0] + 4], "big")
    last = segments[-1]
    last_end = last + 2 + int.from_bytes(signed[last + 2:last + 4], "big")
    store = manifest_store(signed)
    description = store.index(b"jumd") - 4  # the store's description box says it runs 4 GB
    lying = store[:description] + (2**32 - 16).to_bytes(4, "big") + store[description + 4:]
    nested = b""
    for _ in range(2000):
        nested = superbox(b"c2pa", nested)
    padding = superbox(b"c2pa.padding", box(b"json", b"{" + b" " * (40 * 2**20) + b"}"))
    base = face_jpeg(7)
    return {"truncated_store.jpg": signed[:first_end] + signed[last_end:],  # first part only
            "lying_lengths.jpg": with_jumbf(base, lying),
            "nested_deeply.jpg": with_jumbf(base, nested),
            "huge_store.jpg": with_jumbf(base, box(b"jumb", store[8:] + padding))}


def manifest_store(jpeg: bytes) -> bytes:
    """The C2PA manifest store (a JUMBF superbox) embedded in a JPEG's APP11 segments."""
    body = b""
    for i, at in enumerate(_app11_segments(jpeg)):
        length = int.from_bytes(jpeg[at + 2:at + 4], "big")
        payload = jpeg[at + 4:at + 2 + length]  # "JP", instance, sequence, box header, data
        body += payload[8:] if i == 0 else payload[16:]
    return body
