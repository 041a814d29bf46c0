"""Where a file says it came from, beside what its pixels look like: C2PA Content Credentials
(signed manifests), the XMP/IPTC DigitalSourceType, generator text chunks (Stable Diffusion
WebUI's ``parameters``, ComfyUI's ``prompt``/``workflow``) and EXIF software/make/model.

An independent signal, never mixed into P(fake). Metadata is read in this process (Pillow
parses headers only: well under a millisecond); a C2PA manifest store, native code, is read
in a separate process with a time limit (``provenance_worker``), and only when the file
holds one. The result, one per file (``Provenance.read``)::

    {"claim": "ai_generated" | "ai_edited" | "camera" | "edited" | "none",
     "verified": bool,   # the claim is a C2PA manifest whose signature and hashes check out
     "trusted": bool,    # ... signed by a certificate that chains to provenance.trust_anchors
     "source": "c2pa" | "xmp" | "generator" | "exif" | None,   # where the claim comes from
     "summary": str,     # one line for people
     "c2pa": None | {state, claim_generator, signer, issuer, signed_at, digital_source_type,
                     actions, ingredients, failures},
     "metadata": {digital_source_type, generator, software, make, model: only those found},
     "error": str}       # why part of it could not be read ("" when all was)

"none" means nothing was found; it says nothing about whether the file is authentic.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

CLAIMS = ("ai_generated", "ai_edited", "camera", "edited", "none")
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types (the C2PA and XMP vocabulary) by the claim each makes
GENERATED = {"trainedAlgorithmicMedia"}
AI_EDITED = {"compositeWithTrainedAlgorithmicMedia", "compositeSynthetic",
             "algorithmicallyEnhanced"}
CAPTURED = {"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"}
# C2PA actions that only record where an asset starts, not a change to it
ORIGIN_ACTIONS = {"c2pa.created", "c2pa.opened"}
# PNG text chunks that generators write: chunk name -> generator
GENERATOR_CHUNKS = {"parameters": "Stable Diffusion WebUI", "prompt": "ComfyUI",
                    "workflow": "ComfyUI", "invokeai_metadata": "InvokeAI",
                    "sd-metadata": "InvokeAI", "Dream": "InvokeAI"}
# EXIF Software values of image generators (matched case-insensitively, as words)
GENERATOR_SOFTWARE = re.compile(r"\b(stable diffusion|midjourney|dall[·.\- ]?e|firefly|"
                                r"imagen|novelai|comfyui|invokeai|flux)\b", re.I)
EXIF_SOFTWARE, EXIF_MAKE, EXIF_MODEL = 0x0131, 0x010F, 0x0110
# <…DigitalSourceType>URI<, …DigitalSourceType="URI", or …DigitalSourceType rdf:resource="URI"
_XMP_DST = re.compile(rb"DigitalSourceType(?:\s*=\s*[\"']|>|\s+rdf:resource\s*=\s*[\"'])"
                      rb"\s*([^\"'<\s]{1,200})")
TEXT_LIMIT = 200  # characters kept of any text read from a file


@dataclass(frozen=True)
class Provenance:
    """How to read provenance: the PEM file of trusted signer certificates (empty: none is
    trusted, a good signature reads "signer not in your trust list") and the time limit on
    one manifest store."""

    trust_anchors: str = ""
    timeout_s: float = 20.0

    @classmethod
    def from_params(cls, params: dict, root: Path | None = None) -> Provenance:
        cfg = params.get("provenance") or {}
        anchors = cfg.get("trust_anchors") or ""
        if anchors and root is not None and not Path(anchors).is_absolute():
            anchors = str(root / anchors)
        if anchors and not Path(anchors).is_file():
            raise FileNotFoundError(f"provenance.trust_anchors: no file {anchors} (a PEM file of "
                                    "signer or root certificates; empty for none)")
        return cls(anchors, float(cfg.get("timeout_s", 20.0)))

    def trust_list_size(self) -> int:
        """How many certificates the trust list holds (0: none is trusted)."""
        if not self.trust_anchors:
            return 0
        return Path(self.trust_anchors).read_bytes().count(b"-----BEGIN CERTIFICATE-----")

    def read(self, source) -> dict:
        """The provenance of one file (bytes or a path); never raises for a bad file: what
        could not be read is in ``error``."""
        from .provenance_worker import read_manifest_store

        data, path = (bytes(source), None) if isinstance(source, (bytes, bytearray)) else \
            (None, str(source))
        errors = []
        if data is None:
            try:
                data = _head_and_tail(path)
            except OSError as exc:
                return result(None, {}, f"unreadable: {exc.strerror or exc}")
        metadata = read_metadata(data)
        c2pa = None
        if has_manifest_store(data):
            store, error = read_manifest_store(path or data, self.trust_anchors, self.timeout_s)
            if error:
                errors.append(f"c2pa: {error}")
            elif store is not None:
                try:
                    c2pa = summarise_store(store)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    errors.append(f"c2pa: manifest store not understood ({type(exc).__name__})")
        return result(c2pa, metadata, "; ".join(errors))


def _head_and_tail(path: str, window: int = 64 * 2**20) -> bytes:
    """What the in-process checks look at of a file on disk: all of it up to ``window``
    bytes; of a larger file (a video) its first and last ``window`` (manifests sit near an
    end). The C2PA reader itself opens the file by path."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in cannot hang it
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        head = fh.read(window + 1)
        if len(head) <= window:
            return head
        fh.seek(-window, io.SEEK_END)
        return head[:window] + fh.read(window)


def has_manifest_store(data: bytes) -> bool:
    """Whether ``data`` holds an embedded C2PA manifest store: a JUMBF superbox (``jumb``)
    labelled ``c2pa``, the form every format embeds (JPEG APP11, PNG caBX, WebP, ISO BMFF
    uuid boxes). A false positive only costs one look by the C2PA reader."""
    return b"jumb" in data and b"c2pa" in data


def _text(value, limit: int = TEXT_LIMIT) -> str:
    """Text a file supplied, safe to print: one line, printable characters only (no
    terminal escapes), at most ``limit`` characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = " ".join(str(value).split())
    return "".join(c for c in value[:limit * 2] if c.isprintable())[:limit]


def source_type_name(value: str | None) -> str | None:
    """``…/digitalsourcetype/trainedAlgorithmicMedia`` -> ``trainedAlgorithmicMedia``."""
    if not value:
        return None
    return _text(value).rstrip("/").rsplit("/", 1)[-1] or None


def read_metadata(data: bytes) -> dict:
    """The XMP DigitalSourceType, generator text chunks and EXIF software/make/model of an
    image, from its headers (Pillow does not decode pixels here); {} for anything Pillow
    cannot open."""
    from PIL import Image

    found = {}
    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as img:
            warnings.simplefilter("ignore")
            info = img.info
            xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or b""
            match = _XMP_DST.search(xmp.encode("utf-8", "replace") if isinstance(xmp, str)
                                    else bytes(xmp))
            if match:
                found["digital_source_type"] = source_type_name(match.group(1).decode("latin-1"))
            for chunk, generator in GENERATOR_CHUNKS.items():
                if isinstance(info.get(chunk), (str, bytes)):
                    found["generator"] = generator
                    found["generator_text"] = _text(info[chunk])
                    break
            exif = img.getexif()
            for key, tag in (("software", EXIF_SOFTWARE), ("make", EXIF_MAKE),
                             ("model", EXIF_MODEL)):
                if exif.get(tag):
                    found[key] = _text(exif[tag], 100)
    except Exception:  # noqa: BLE001 - an unreadable header has no metadata; the image
        pass  # loader reports why the file is unusable
    return {k: v for k, v in found.items() if v}


def _failures(store: dict) -> list[dict]:
    """The active manifest's failed checks (trust aside: that is ``trusted``), each with its
    code, the assertion it concerns and the library's explanation."""
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    rows = []
    for item in results.get("failure") or []:
        if item.get("code") == "signingCredential.untrusted":
            continue
        url = str(item.get("url") or "")
        assertion = url.rsplit("c2pa.assertions/", 1)[1] if "c2pa.assertions/" in url else ""
        rows.append({"code": _text(item.get("code")), "assertion": _text(assertion),
                     "explanation": _text(item.get("explanation"))})
    return rows


def summarise_store(store: dict) -> dict:
    """The active manifest of a C2PA manifest store (the reader's JSON) in the result's form."""
    manifest = store["manifests"][store["active_manifest"]]
    info = (manifest.get("claim_generator_info") or [{}])[0]
    generator = " ".join(_text(info.get(k)) for k in ("name", "version") if info.get(k)) \
        or _text(manifest.get("claim_generator") or "")
    signature = manifest.get("signature_info") or {}
    actions = []
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions") or []:
                agent = action.get("softwareAgent")
                actions.append({"action": _text(action.get("action")),
                                "digital_source_type": source_type_name(
                                    action.get("digitalSourceType")),
                                "software": _text(agent.get("name") if isinstance(agent, dict)
                                                  else agent or "")})
    state = str(store.get("validation_state") or "").lower()
    failures = _failures(store)
    return {"state": "trusted" if state == "trusted" and not failures else
            "valid" if state in ("valid", "trusted") and not failures else "invalid",
            "claim_generator": generator, "signer": _text(signature.get("common_name") or ""),
            "issuer": _text(signature.get("issuer") or ""),
            "signed_at": _text(signature.get("time") or "") or None,
            "digital_source_type": next((a["digital_source_type"] for a in actions
                                         if a["digital_source_type"]), None),
            "actions": actions[:50],
            "ingredients": [{"title": _text(i.get("title") or ""),
                             "relationship": _text(i.get("relationship") or "")}
                            for i in (manifest.get("ingredients") or [])[:20]],
            "failures": failures[:20]}


def claim_of_source_type(source_type: str | None, edited: bool = False) -> str:
    if source_type in GENERATED:
        return "ai_edited" if edited else "ai_generated"
    if source_type in AI_EDITED:
        return "ai_edited"
    if source_type in CAPTURED:
        return "edited" if edited else "camera"
    return "edited" if source_type or edited else "none"


def c2pa_claim(c2pa: dict) -> str:
    """What a manifest's actions claim: generated by AI (trainedAlgorithmicMedia at the
    origin), edited with AI (AI media placed into or made from another asset), a camera
    capture left as taken, or edited."""
    actions = c2pa["actions"]
    edits = [a for a in actions if a["action"] not in ORIGIN_ACTIONS]
    claims = set()
    for a in actions:
        if a["digital_source_type"]:
            claims.add(claim_of_source_type(a["digital_source_type"],
                                            a["action"] not in ORIGIN_ACTIONS))
    for claim in CLAIMS:  # the strongest statement wins: ai_generated over ai_edited over …
        if claim in claims:
            return "edited" if claim == "camera" and edits else claim
    return "edited" if edits else "none"


def metadata_claim(metadata: dict) -> tuple[str, str | None]:
    """(claim, source) from unsigned metadata: anyone can write these."""
    if metadata.get("digital_source_type"):
        return claim_of_source_type(metadata["digital_source_type"]), "xmp"
    if metadata.get("generator"):
        return "ai_generated", "generator"
    if GENERATOR_SOFTWARE.search(metadata.get("software", "")):
        return "ai_generated", "exif"
    if metadata.get("make") or metadata.get("model"):
        return ("edited" if metadata.get("software") else "camera"), "exif"
    return "none", None


TRUST_WORDS = {"trusted": "signature valid, signer in your trust list",
               "valid": "signature valid; signer not in your trust list",
               "invalid": "signature broken"}
CLAIM_WORDS = {"ai_generated": "generated by AI", "ai_edited": "edited with AI",
               "camera": "captured by a camera", "edited": "edited", "none": "no origin stated"}


def summary_text(claim: str, source: str | None, c2pa: dict | None, metadata: dict,
                 error: str = "") -> str:
    if source == "c2pa":
        who = f" with {c2pa['claim_generator']}" if c2pa["claim_generator"] else ""
        by = c2pa["signer"] + (f" ({c2pa['issuer']})" if c2pa["issuer"] else "")
        trust = TRUST_WORDS[c2pa["state"]]
        if c2pa["failures"]:
            trust += ": " + ", ".join(sorted({f["code"] + (f" in {f['assertion']}" if
                                                            f["assertion"] else "")
                                               for f in c2pa["failures"]}))[:300]
        return f"Content Credentials: {CLAIM_WORDS[claim]}{who}, signed by {by or '?'} ({trust})"
    if source is None and error:
        return f"provenance could not be read ({error}); nothing else found"
    if source is None:
        return "no provenance found (this says nothing about whether the file is authentic)"
    what = {"xmp": f"XMP DigitalSourceType {metadata.get('digital_source_type')}",
            "generator": f"{metadata.get('generator')} metadata",
            "exif": "EXIF " + ", ".join(f"{k} {metadata[k]}" for k in ("software", "make",
                                                                       "model")
                                        if metadata.get(k))}[source]
    return f"metadata (unsigned, anyone can write it): {CLAIM_WORDS[claim]}: {what}"


def result(c2pa: dict | None, metadata: dict, error: str = "") -> dict:
    if c2pa is not None:
        claim, source = c2pa_claim(c2pa), "c2pa"
    else:
        claim, source = metadata_claim(metadata)
    return {"claim": claim, "verified": bool(c2pa and c2pa["state"] != "invalid"),
            "trusted": bool(c2pa and c2pa["state"] == "trusted"), "source": source,
            "summary": summary_text(claim, source, c2pa, metadata, error), "c2pa": c2pa,
            "metadata": metadata, "error": error}
