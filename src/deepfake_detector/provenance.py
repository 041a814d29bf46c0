"""Where a file says it came from, beside what its pixels look like: C2PA Content Credentials
(signed manifests), the XMP/IPTC DigitalSourceType, generator text chunks (Stable Diffusion
WebUI's ``parameters``, ComfyUI's ``prompt``/``workflow``) and EXIF software/make/model.

An independent signal, never mixed into P(fake). Metadata is read in this process from the
file's headers (no pixel is decoded: well under a millisecond); a C2PA manifest store, read
by native code, is read in a child process with limits (``provenance_worker``), and only
when the file holds one. The result, one per file (``Provenance.read``)::

    {"claim": "ai_generated" | "ai_edited" | "camera" | "edited" | "none",
     "verified": bool,   # the claim is a C2PA manifest whose signature and hashes check out
     "trusted": bool,    # ... signed by a certificate that chains to provenance.trust_anchors
     "source": "c2pa" | "xmp" | "generator" | "exif" | None,   # where the claim comes from
     "summary": str,     # one line for people
     "c2pa": None | {state, claim, claim_generator, signer, issuer, signed_at,
                     digital_source_type, actions, ingredients, failures},
     "metadata": {digital_source_type, generator, generator_text, software, make, model},
     "error": str}       # why part of it could not be read ("" when all was)

"none" means nothing was found; it says nothing about whether the file is authentic.
``provenance_claims`` holds the vocabulary and the words.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from .provenance_claims import (
    c2pa_text,
    metadata_claim,
    metadata_text,
    source_type_name,
    summarise_store,
    text,
)

# A JUMBF description box ("jumd") typed as a C2PA manifest store (UUID 63327061-0011-0010-
# 8000-00AA00389B71): how every format embeds one (JPEG APP11, PNG caBX, WebP, ISO BMFF).
C2PA_STORE = b"jumd" + bytes.fromhex("6332706100110010800000aa00389b71")
# PNG text chunks that generators write: chunk keyword -> generator
GENERATOR_CHUNKS = {"parameters": "Stable Diffusion WebUI", "prompt": "ComfyUI",
                    "workflow": "ComfyUI", "invokeai_metadata": "InvokeAI",
                    "sd-metadata": "InvokeAI", "Dream": "InvokeAI"}
EXIF_TAGS = {"software": 0x0131, "make": 0x010F, "model": 0x0110}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNK_BYTES = 1 << 20  # a compressed text chunk is inflated this far, no further
INFLATE_BUDGET = 4 << 20    # ...and all of a file's chunks together
XMP_BYTES = 1 << 20         # of an XMP packet, this much is searched
# the IPTC property, as an attribute or an element; XML comments are removed first
_XMP_DST = re.compile(rb"Iptc4xmpExt:DigitalSourceType(?:\s*=\s*[\"']|>|"
                      rb"\s+rdf:resource\s*=\s*[\"'])\s*([^\"'<\s]{1,200})")


@dataclass(frozen=True)
class Provenance:
    """How to read provenance: the PEM file of trusted signer certificates (empty: none is
    trusted, a good signature reads "signer not in your trust list") and the time limit on
    one manifest store."""

    trust_anchors: str = ""
    timeout_s: float = 20.0

    @classmethod
    def from_params(cls, params: dict, root: Path | None = None) -> Provenance:
        """``provenance.*``; a relative ``trust_anchors`` is taken from ``root`` (the
        project folder)."""
        cfg = params.get("provenance") or {}
        anchors = cfg.get("trust_anchors") or ""
        if anchors and root is not None and not Path(anchors).is_absolute():
            anchors = str(root / anchors)
        if anchors and not Path(anchors).is_file():
            raise FileNotFoundError(f"provenance.trust_anchors: no file {anchors} (a PEM file of "
                                    "signer or root certificates; null for none)")
        return cls(anchors, float(cfg.get("timeout_s", 20.0)))

    def trust_list_size(self) -> int:
        """How many certificates the trust list holds (0: none is trusted)."""
        if not self.trust_anchors:
            return 0
        return Path(self.trust_anchors).read_bytes().count(b"-----BEGIN CERTIFICATE-----")

    def read(self, source) -> dict:
        """The provenance of one file (bytes or a path: a video, read by path); never raises
        for a bad file: what could not be read is in ``error``."""
        from .provenance_worker import read_manifest_store

        data, path = (bytes(source), None) if isinstance(source, (bytes, bytearray)) else \
            (None, str(source))
        if data is None:
            try:
                data = _head_and_tail(path)
            except (OSError, ValueError) as exc:
                return result(None, {}, f"unreadable: {getattr(exc, 'strerror', None) or exc}")
        metadata, errors = read_metadata(data)
        c2pa = None
        if has_manifest_store(data):
            store, error = read_manifest_store(path or data, self.trust_anchors, self.timeout_s)
            if error:
                errors.append(f"c2pa: {error}")
            elif store is not None:
                try:
                    c2pa = summarise_store(store)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    errors.append(f"c2pa: manifest store not understood ({exc})")
        return result(c2pa, metadata, "; ".join(errors))


def _head_and_tail(path: str, window: int = 64 * 2**20) -> bytes:
    """What the in-process checks look at of a file on disk: all of it up to ``window``
    bytes; of a larger file (a video) its first and last ``window`` (manifests sit near an
    end). Only a regular file is read; the C2PA reader opens the file itself."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in cannot hang it
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        head = fh.read(window + 1)
        if len(head) <= window:
            return head
        fh.seek(-window, io.SEEK_END)
        return head[:window] + fh.read(window)


def has_manifest_store(data: bytes) -> bool:
    """Whether ``data`` holds an embedded C2PA manifest store (its JUMBF description box)."""
    return C2PA_STORE in data


def read_metadata(data: bytes) -> tuple[dict, list[str]]:
    """(the XMP DigitalSourceType, generator text chunks and EXIF software/make/model of an
    image; why some could not be read). Headers only: PNG chunks are walked here, other
    formats opened by Pillow without decoding pixels."""
    found, errors, exif, xmp = {}, [], None, b""
    if data.startswith(PNG_SIGNATURE):
        texts, exif, xmp, error = _png_chunks(data)
        for keyword, generator in GENERATOR_CHUNKS.items():
            if keyword in texts:
                found.update(generator=generator, generator_text=text(texts[keyword]))
                break
        if error:
            errors.append(error)
    else:
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # before opening: open itself warns
                with Image.open(io.BytesIO(data)) as img:
                    xmp = img.info.get("xmp") or b""
                    exif = img.getexif() if img.format == "TIFF" else img.info.get("exif")
        except Exception as exc:  # noqa: BLE001 - not an image Pillow knows: no metadata
            if data[:2] in (b"\xff\xd8", b"II", b"MM") or data[8:12] == b"WEBP":
                errors.append(f"metadata unreadable: {text(exc, 120)}")
    if xmp:
        xmp = xmp.encode("utf-8", "replace") if isinstance(xmp, str) else bytes(xmp)
        match = _XMP_DST.search(without_comments(xmp[:XMP_BYTES]))
        if match:
            found["digital_source_type"] = source_type_name(match.group(1).decode(
                "utf-8", "replace"))
    found.update(_exif_fields(exif, errors))
    return {k: v for k, v in found.items() if v}, errors


def without_comments(xml: bytes) -> bytes:
    """``xml`` without its ``<!-- … -->`` comments, in one pass (a regular expression
    would restart at every unclosed ``<!--``); text after an unclosed one is dropped."""
    kept, at = [], 0
    while (start := xml.find(b"<!--", at)) >= 0:
        kept.append(xml[at:start])
        end = xml.find(b"-->", start + 4)
        if end < 0:
            return b"".join(kept)
        at = end + 3
    kept.append(xml[at:])
    return b"".join(kept)


def _exif_fields(exif, errors: list[str]) -> dict:
    from PIL import Image

    if not exif:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(exif, (bytes, bytearray)):
                raw, exif = bytes(exif), Image.Exif()
                exif.load(raw)
            return {key: text(exif.get(tag), 100) for key, tag in EXIF_TAGS.items()
                    if exif.get(tag)}
    except Exception as exc:  # noqa: BLE001 - a damaged EXIF block: the rest still counts
        errors.append(f"EXIF unreadable: {text(exc, 120)}")
        return {}


def _png_chunks(data: bytes) -> tuple[dict, bytes | None, bytes, str]:
    """(the generators' text chunks by keyword, the eXIf chunk, the XMP packet, an error) of
    a PNG, walked chunk by chunk over the whole file (text after the image data counts too).
    Only those chunks are kept; compressed text is inflated up to ``TEXT_CHUNK_BYTES`` a
    chunk and ``INFLATE_BUDGET`` a file."""
    texts, exif, xmp, at, error = {}, None, b"", len(PNG_SIGNATURE), ""
    budget = [INFLATE_BUDGET]
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if len(body) < length:
            error = "metadata: PNG chunk cut short"
            break
        at += 12 + length
        if kind == b"IEND":
            break
        if kind == b"eXIf":
            exif = body
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword, _, rest = body.partition(b"\x00")
            name = keyword.decode("latin-1")
            wanted = name in GENERATOR_CHUNKS and name not in texts
            if name == "XML:com.adobe.xmp" and not xmp or wanted:
                value = _png_text(kind, rest, budget)
                if value is not None and wanted:
                    texts[name] = value
                elif value is not None:
                    xmp = value
    return texts, exif, xmp, error


def _png_text(kind: bytes, rest: bytes, budget: list[int]) -> bytes | None:
    if kind == b"tEXt":
        return rest
    if kind == b"zTXt":
        compressed, payload = True, rest[1:]
    else:  # iTXt: compression flag, method, language tag \0, translated keyword \0, text
        compressed = rest[:1] == b"\x01"
        parts = rest[2:].split(b"\x00", 2)
        if len(parts) < 3:
            return None
        payload = parts[2]
    if not compressed:
        return payload
    if budget[0] <= 0:
        return None
    try:
        value = zlib.decompressobj().decompress(payload, min(TEXT_CHUNK_BYTES, budget[0]))
    except zlib.error:
        return None
    budget[0] -= len(value)
    return value


def result(c2pa: dict | None, metadata: dict, error: str = "") -> dict:
    """The result from what was read. A broken manifest does not hide what unsigned
    metadata says: its claim then comes from the metadata, and the summary names both."""
    error = text(error, 600)
    meta_claim, meta_source = metadata_claim(metadata)
    if c2pa is not None and not (c2pa["state"] == "invalid" and meta_source):
        claim, source = c2pa["claim"], "c2pa"
        summary = c2pa_text(c2pa)
    elif meta_source:
        claim, source = meta_claim, meta_source
        summary = metadata_text(claim, source, metadata) + (
            f"; and {c2pa_text(c2pa)}" if c2pa else "")
    else:
        claim, source = "none", None
        summary = (f"provenance could not be read ({error}); nothing else found" if error else
                   "no provenance found (this says nothing about whether the file is "
                   "authentic)")
    return {"claim": claim, "verified": bool(source == "c2pa" and c2pa["state"] != "invalid"),
            "trusted": bool(source == "c2pa" and c2pa["state"] == "trusted"),
            "source": source, "summary": summary, "c2pa": c2pa, "metadata": metadata,
            "error": error}
