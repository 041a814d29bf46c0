"""What a file's provenance claims, in one vocabulary: ``ai_generated``, ``ai_edited``,
``camera``, ``edited`` or ``none``; from a C2PA manifest store (its actions' IPTC digital
source types, and the manifests of the assets it was made from) or from unsigned metadata;
and the one line people read (``summary_text``). ``provenance.py`` reads the files."""

from __future__ import annotations

import re

CLAIMS = ("ai_generated", "ai_edited", "camera", "edited", "none")  # strongest first
# IPTC digital source types (the C2PA and XMP vocabulary) by the claim each makes
GENERATED = {"trainedAlgorithmicMedia"}
AI_EDITED = {"compositeWithTrainedAlgorithmicMedia", "compositeSynthetic",
             "algorithmicallyEnhanced"}
CAPTURED = {"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"}
# C2PA actions that record where an asset starts, or change no content (the spec's
# non-editorial actions: a new encoding or container, publishing)
ORIGIN_ACTIONS = {"c2pa.created", "c2pa.opened", "c2pa.transcoded", "c2pa.repackaged",
                  "c2pa.published"}
# failures that concern trust, not integrity: reported by ``trusted``, not as "broken"
TRUST_CODES = {"signingCredential.untrusted", "timeStamp.untrusted"}
# EXIF Software values of image generators, and of editors (a camera writes its firmware)
GENERATOR_SOFTWARE = re.compile(r"\b(stable diffusion|midjourney|dall[·.\- ]?e|firefly|"
                                r"imagen|novelai|comfyui|invokeai|flux)\b", re.I)
EDITING_SOFTWARE = re.compile(r"\b(photoshop|lightroom|gimp|snapseed|affinity|pixelmator|"
                              r"capture one|darktable|rawtherapee|paint\.net|canva|picsart|"
                              r"facetune|vsco|luminar|photopea|krita|photos? editor)\b", re.I)
TEXT_LIMIT = 200     # characters kept of any text a file supplies
MAX_ACTIONS = 50     # actions and ingredients listed in a result (all are judged)
MAX_DEPTH = 8        # ingredient manifests followed


def text(value, limit: int = TEXT_LIMIT) -> str:
    """Text a file (or a library reading it) supplied, safe to print: one line, printable
    characters only (no terminal escapes), at most ``limit`` characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = " ".join(str(value).split())
    return "".join(c for c in value[:limit * 2] if c.isprintable())[:limit]


def source_type_name(value) -> str | None:
    """``…/digitalsourcetype/trainedAlgorithmicMedia`` -> ``trainedAlgorithmicMedia``."""
    if not value:
        return None
    return text(value).rstrip("/").rsplit("/", 1)[-1] or None


def claim_of_source_type(source_type: str | None, edited: bool = False) -> str:
    if source_type in GENERATED:
        return "ai_edited" if edited else "ai_generated"
    if source_type in AI_EDITED:
        return "ai_edited"
    if source_type in CAPTURED:
        return "edited" if edited else "camera"
    return "edited" if source_type or edited else "none"


def strongest(claims) -> str:
    claims = set(claims)
    return next((c for c in CLAIMS if c in claims), "none")


def _actions(manifest: dict) -> list[dict]:
    rows = []
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions") or []:
                agent = action.get("softwareAgent")
                rows.append({"action": text(action.get("action")),
                             "digital_source_type": source_type_name(
                                 action.get("digitalSourceType")),
                             "software": text(agent.get("name") if isinstance(agent, dict)
                                              else agent or "")})
    return rows


def manifest_claim(store: dict, label: str, depth: int = 0,
                   seen: dict | None = None) -> str:
    """What one manifest claims, with the assets it was made from: AI at the origin
    (``trainedAlgorithmicMedia`` on ``c2pa.created``) is ``ai_generated``, AI placed into
    or made from another asset ``ai_edited``, a capture left as taken ``camera``, anything
    else changed ``edited``. A parent ingredient with a manifest of its own passes its claim
    on (an AI image opened and retouched stays AI-generated; a photograph retouched is
    edited)."""
    seen = {} if seen is None else seen  # label -> claim: each manifest judged once
    if label in seen:
        return seen[label]
    seen[label] = "none"  # a manifest reached again through itself adds nothing
    manifest = (store.get("manifests") or {}).get(label) or {}
    actions = _actions(manifest)
    edits = any(a["action"] not in ORIGIN_ACTIONS for a in actions)
    claims = {claim_of_source_type(a["digital_source_type"], a["action"] not in ORIGIN_ACTIONS)
              for a in actions if a["digital_source_type"]}
    if depth < MAX_DEPTH:
        for ingredient in manifest.get("ingredients") or []:
            parent = ingredient.get("active_manifest")
            if ingredient.get("relationship") == "parentOf" and parent:
                claims.add(manifest_claim(store, parent, depth + 1, seen))
    claim = strongest(claims)
    if edits and claim in ("camera", "none"):
        claim = "edited"
    seen[label] = claim
    return claim


def summarise_store(store: dict) -> dict:
    """The active manifest of a C2PA manifest store (the reader's JSON) in the result's form.
    ``ValueError`` for a validation state this code does not know (never read as broken)."""
    label = store["active_manifest"]
    manifest = store["manifests"][label]
    info = (manifest.get("claim_generator_info") or [{}])[0]
    generator = " ".join(text(info.get(k)) for k in ("name", "version") if info.get(k)) \
        or text(manifest.get("claim_generator") or "")
    signature = manifest.get("signature_info") or {}
    actions = _actions(manifest)
    state = str(store.get("validation_state") or "").lower()
    if state not in ("trusted", "valid", "invalid"):
        raise ValueError(f"unknown validation state {text(state, 40)!r}")
    failures = _failures(store)
    return {"state": "invalid" if state == "invalid" or failures else state,
            "claim": manifest_claim(store, label),
            "claim_generator": generator, "signer": text(signature.get("common_name") or ""),
            "issuer": text(signature.get("issuer") or ""),
            "signed_at": text(signature.get("time") or "") or None,
            "digital_source_type": next((a["digital_source_type"] for a in actions
                                         if a["digital_source_type"]), None),
            "actions": actions[:MAX_ACTIONS],
            "ingredients": [{"title": text(i.get("title") or ""),
                             "relationship": text(i.get("relationship") or "")}
                            for i in (manifest.get("ingredients") or [])[:MAX_ACTIONS]],
            "failures": failures[:20]}


def _failures(store: dict) -> list[dict]:
    """The active manifest's failed checks (trust aside: that is ``trusted``), each with its
    code, the assertion it concerns and the library's explanation."""
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    rows = []
    for item in results.get("failure") or []:
        if item.get("code") in TRUST_CODES:
            continue
        url = str(item.get("url") or "")
        assertion = url.rsplit("c2pa.assertions/", 1)[1] if "c2pa.assertions/" in url else ""
        rows.append({"code": text(item.get("code")), "assertion": text(assertion),
                     "explanation": text(item.get("explanation"))})
    return rows


def metadata_claim(metadata: dict) -> tuple[str, str | None]:
    """(claim, source) from unsigned metadata: anyone can write these."""
    if metadata.get("digital_source_type"):
        return claim_of_source_type(metadata["digital_source_type"]), "xmp"
    if metadata.get("generator"):
        return "ai_generated", "generator"
    software = metadata.get("software", "")
    if GENERATOR_SOFTWARE.search(software):
        return "ai_generated", "exif"
    if EDITING_SOFTWARE.search(software):
        return "edited", "exif"
    if metadata.get("make") or metadata.get("model"):
        return "camera", "exif"  # a camera's own Software is its firmware
    return "none", None


TRUST_WORDS = {"trusted": "signature valid, signer in your trust list",
               "valid": "signature valid; signer not in your trust list",
               "invalid": "signature broken"}
CLAIM_WORDS = {"ai_generated": "generated by AI", "ai_edited": "edited with AI",
               "camera": "captured by a camera", "edited": "edited", "none": "no origin stated"}


def c2pa_text(c2pa: dict) -> str:
    who = f" with {c2pa['claim_generator']}" if c2pa["claim_generator"] else ""
    by = c2pa["signer"] + (f" ({c2pa['issuer']})" if c2pa["issuer"] else "")
    trust = TRUST_WORDS[c2pa["state"]]
    if c2pa["failures"]:
        trust += ": " + ", ".join(sorted({f["code"] + (f" in {f['assertion']}" if
                                                        f["assertion"] else "")
                                           for f in c2pa["failures"]}))[:300]
    return (f"Content Credentials: {CLAIM_WORDS[c2pa['claim']]}{who}, signed by {by or '?'} "
            f"({trust})")


def metadata_text(claim: str, source: str, metadata: dict) -> str:
    what = {"xmp": f"XMP DigitalSourceType {metadata.get('digital_source_type')}",
            "generator": f"{metadata.get('generator')} metadata",
            "exif": "EXIF " + ", ".join(f"{k} {metadata[k]}" for k in ("software", "make",
                                                                       "model")
                                        if metadata.get(k))}[source]
    return f"metadata (unsigned, anyone can write it): {CLAIM_WORDS[claim]}: {what}"
