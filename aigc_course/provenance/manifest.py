"""Marking generated images in their metadata: an IPTC "AI-generated" record and a signed,
C2PA-style manifest in PNG text chunks, and how easily both are lost.

The rule. The EU AI Act (Regulation (EU) 2024/1689), Article 50(2): providers of AI
systems, including general-purpose AI systems, generating synthetic audio, image, video or
text content shall ensure that the outputs are marked in a machine-readable format and
detectable as artificially generated or manipulated; the technical solutions must be
effective, interoperable, robust and reliable as far as technically feasible (given the
kind of content, the cost and the generally acknowledged state of the art). Article 50
applies from 2 August 2026 (Article 113). The Act prescribes no technique; its recital 133
lists watermarks, metadata identifications, cryptographic methods for proving provenance,
logging and fingerprints. This module is the metadata and cryptographic kind; the chapter's
watermark modules are the other, and the two fail differently.

What :func:`write_png` puts in the file (PNG ``tEXt``/``iTXt`` chunks, written by Pillow's
:class:`PIL.PngImagePlugin.PngInfo`):

* ``DigitalSourceType``: the IPTC NewsCodes term for AI output,
  ``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia``, also in a
  minimal XMP packet (``XML:com.adobe.xmp``, property ``Iptc4xmpExt:DigitalSourceType``),
  where the IPTC Photo Metadata Standard (since 2022.1) puts it and tools such as exiftool read it;
* ``AIGC:Generator`` (the model kind and the SHA-256 of its checkpoint file) and
  ``AIGC:Created`` (UTC time, ISO 8601);
* ``AIGC:Manifest``: a JSON claim with three assertions -- ``c2pa.actions`` (one action
  ``c2pa.created`` with the digital source type), ``aigc_course.generator``, and a hash
  binding ``aigc_course.hash.pixels`` -- and an Ed25519 signature (RFC 8032) over the
  claim's canonical JSON, made with a local key file; no remote service is contacted.

The hash binding is the SHA-256 of the decoded pixels (mode, size and the raw ``uint8``
samples), not of the file's bytes: a lossless re-save that keeps the chunks keeps the
manifest valid, while changing one pixel breaks it. :func:`verify` reports why a file
fails: ``"no manifest"``, ``"unsigned"``, ``"wrong key"`` (signed by another key),
``"signature invalid"`` (the claim was edited) or ``"pixels changed"``.

Simplified, and why: this is *C2PA-style*, not C2PA. A real C2PA manifest (C2PA
specification 2.x) is a JUMBF box (ISO/IEC 19566-5) embedded in the file (a ``caBX`` chunk
in PNG), its claim is CBOR, the signature is COSE (RFC 9052) with an X.509 certificate chain
that ties the key to an organisation and is checked against a trust list, and its hard
binding hashes the file's bytes with exclusion ranges. Here the claim is JSON in text
chunks, the key is a bare Ed25519 key with no certificate (so the signature proves "the
holder of this key signed it", not who that is), and the binding hashes pixels; the point
is the mechanism (sign a claim, bind it to the content, verify both) in a hundred lines.

What it cannot do: metadata travels beside the pixels, so any tool that re-encodes the
image without copying the chunks drops it (:func:`strip_metadata`: opening and saving
with Pillow, or converting to JPEG, as most upload pipelines and screenshot tools do). A
stripped file is indistinguishable from one never marked; the record proves provenance
when present and says nothing when absent. An invisible watermark survives that re-save
(and can be removed by other means): the chapter pairs the two.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from aigc_course import __version__
from aigc_course.checkpoint import atomic_write
from aigc_course.utils import file_sha256

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
FORMAT = "aigc_course.c2pa_style_manifest/v1"
KEY_SOURCE, KEY_GENERATOR, KEY_CREATED = "DigitalSourceType", "AIGC:Generator", "AIGC:Created"
KEY_MANIFEST, KEY_XMP = "AIGC:Manifest", "XML:com.adobe.xmp"
_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'Iptc4xmpExt:DigitalSourceType="{}"/></rdf:RDF></x:xmpmeta>')
Reason = Literal["valid", "no manifest", "unsigned", "wrong key", "signature invalid",
                 "pixels changed"]


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`.

    Attributes:
        valid: the signature is good for the given key and the pixels match the claim.
        reason: ``"valid"`` or why not (see the module docstring).
        claim: the manifest's claim as read (``None`` when there is none, or unreadable).
        detail: one human-readable sentence.
    """

    valid: bool
    reason: Reason
    claim: dict[str, Any] | None
    detail: str = ""


# -- keys -------------------------------------------------------------------------------

def public_key_path(private_key_path: str | Path) -> Path:
    """Where :func:`generate_signing_key` puts the public half: ``key.pem`` -> ``key.pub.pem``."""
    path = Path(private_key_path)
    return path.with_name(path.stem + ".pub" + (path.suffix or ".pem"))


def generate_signing_key(path: str | Path, *, overwrite: bool = False) -> Path:
    """Make a new Ed25519 key pair: private key at ``path`` (PEM, PKCS #8, mode 0600).

    Both files are written atomically. Keep the private key secret (whoever holds it can
    sign manifests in your name); publish the public key, which :func:`verify` needs.

    Returns:
        The public key's path (:func:`public_key_path`).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false (a lost key cannot be
            recovered, and what it signed could no longer be verified).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace the key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    with atomic_write(path) as scratch:
        os.chmod(scratch, 0o600)                      # before the secret is in it
        scratch.write_bytes(private)
    out = public_key_path(path)
    with atomic_write(out) as scratch:
        scratch.write_bytes(public)
    return out


def _read_pem(path: str | Path, what: str) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} file at {path}")
    data = path.read_bytes()
    if b"-----BEGIN " not in data[:4096]:
        raise ValueError(f"{path} is not a PEM {what} file; make a key pair with "
                         "generate_signing_key(path)")
    return data


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file at ``path``.

    Raises:
        FileNotFoundError: no file. ValueError: not PEM, a public key, or a key of
            another algorithm (RSA, ECDSA...), or encrypted with a password.
    """
    data = _read_pem(path, "Ed25519 private key")
    if b"PUBLIC KEY-----" in data:
        raise ValueError(f"{path} holds a public key; signing needs the private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path} is not an unencrypted PEM private key ({error})") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file at ``path``.

    Raises:
        FileNotFoundError: no file. ValueError: not PEM, a private key (pass the
            ``.pub.pem`` beside it), or a key of another algorithm.
    """
    data = _read_pem(path, "Ed25519 public key")
    if b"PRIVATE KEY-----" in data:
        raise ValueError(f"{path} holds a private key; verify with the public key "
                         f"({public_key_path(path).name}) and keep this one secret")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a PEM public key ({error})") from error
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key: the claim's name for its signer."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# -- pixels -----------------------------------------------------------------------------

def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """An image as ``uint8`` ``(H, W, C)``, the layout Pillow takes.

    Args:
        image: ``(C, H, W)`` with ``C`` in {1, 3}, float in ``[-1, 1]`` (the package's
            convention) or ``uint8``; ``(H, W)`` is read as grey.

    Raises:
        ValueError: another shape or dtype, or float values outside ``[-1, 1]``.
    """
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 2:
        array = array[None]                                    # (1, H, W)
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError("expected an image (C, H, W) with C = 1 or 3, or (H, W), got shape "
                         f"{tuple(array.shape)}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < -1.001 or array.max() > 1.001:
            raise ValueError("a float image must lie in [-1, 1], got values in "
                             f"[{array.min():.3g}, {array.max():.3g}]")
        array = np.round((np.clip(array, -1, 1) + 1) * 127.5).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"expected a float image in [-1, 1] or uint8, got dtype {array.dtype}")
    return np.ascontiguousarray(array.transpose(1, 2, 0))      # (H, W, C)


def pixel_hash(image: Image.Image) -> str:
    """SHA-256 of the decoded pixels: ``sha256(mode ":" W "x" H ":" samples)``, hex.

    Independent of the encoder (compression level, chunk order, other metadata), so a
    lossless re-save keeps it; any changed sample changes it.
    """
    samples = np.ascontiguousarray(np.asarray(image))          # (H, W) or (H, W, C) uint8
    header = f"{image.mode}:{image.width}x{image.height}:".encode()
    return hashlib.sha256(header + samples.tobytes()).hexdigest()


def _open(path: str | Path) -> Image.Image:
    """Open and fully decode an image; corrupt or non-image files give a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}")
    try:
        image = Image.open(path)
        image.load()                                           # decode now: catch truncation
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path} is not a readable image ({type(error).__name__}: "
                         f"{error})") from error
    return image


# -- writing and reading ----------------------------------------------------------------

def generator_info(kind: str, checkpoint: str | Path, **extra: Any) -> dict[str, Any]:
    """The ``generator`` record for :func:`write_png`: kind, checkpoint name and SHA-256."""
    return {"kind": kind, "checkpoint": Path(checkpoint).name,
            "checkpoint_sha256": file_sha256(checkpoint), **extra}


def _check_generator(generator: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(generator, dict) or not isinstance(generator.get("kind"), str):
        raise ValueError("generator must be a dict with a 'kind' string and a "
                         "'checkpoint_sha256'; make one with generator_info(kind, path)")
    digest = generator.get("checkpoint_sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"generator['checkpoint_sha256'] must be 64 hex digits, got {digest!r}")
    try:
        return dict(json.loads(json.dumps(generator)))
    except (TypeError, ValueError) as error:
        raise ValueError(f"generator must hold JSON values only ({error})") from error


def _canonical(claim: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, ASCII (one encoding per claim)."""
    return json.dumps(claim, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def write_png(image: torch.Tensor | np.ndarray, path: str | Path, *, generator: dict[str, Any],
              signing_key_path: str | Path | None = None) -> Path:
    """Save ``image`` as a PNG carrying the AI-generated record and a manifest.

    Args:
        image: ``(C, H, W)`` float in ``[-1, 1]`` or ``uint8`` (see :func:`to_uint8`).
        path: the ``.png`` to write (atomically).
        generator: ``{"kind", "checkpoint_sha256", ...}`` (:func:`generator_info`).
        signing_key_path: the Ed25519 private key that signs the claim; ``None`` writes
            the claim unsigned (:func:`verify` then says ``"unsigned"``).

    Returns:
        ``path``.

    Raises:
        ValueError: a path that does not end in ``.png``, a bad image or generator, or a
            key file that is not an Ed25519 private key.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"write_png writes PNG files (the record lives in PNG text chunks); "
                         f"got {path.name!r}")
    generator = _check_generator(generator)
    key = load_signing_key(signing_key_path) if signing_key_path is not None else None
    pixels = to_uint8(image)                                   # (H, W, C)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels,
                              "L" if pixels.shape[-1] == 1 else "RGB")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    claim: dict[str, Any] = {
        "format": FORMAT,
        "claim_generator": f"aigc_course/{__version__}",
        "instance_id": f"xmp:iid:{uuid.uuid4()}",
        "created": created,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                 "softwareAgent": generator["kind"], "when": created}]}},
            {"label": "aigc_course.generator", "data": generator},
            {"label": "aigc_course.hash.pixels",
             "data": {"alg": "sha256", "hash": pixel_hash(picture)}},
        ],
        "signature_alg": "Ed25519" if key else None,
        "signer_key_sha256": key_id(key.public_key()) if key else None,
    }
    manifest: dict[str, Any] = {"claim": claim, "signature": None}
    if key is not None:                                        # RFC 8032 signature, 64 bytes
        manifest["signature"] = base64.b64encode(key.sign(_canonical(claim))).decode()
    info = PngImagePlugin.PngInfo()
    info.add_text(KEY_SOURCE, TRAINED_ALGORITHMIC_MEDIA)
    info.add_itxt(KEY_XMP, _XMP.format(TRAINED_ALGORITHMIC_MEDIA))
    info.add_text(KEY_GENERATOR, json.dumps(generator, sort_keys=True))
    info.add_text(KEY_CREATED, created)
    info.add_itxt(KEY_MANIFEST, json.dumps(manifest, sort_keys=True), zip=True)
    with atomic_write(path) as scratch:
        picture.save(scratch, format="PNG", pnginfo=info)
    return path


def _text(image: Image.Image) -> dict[str, str]:
    chunks = getattr(image, "text", None)                      # PNG tEXt/zTXt/iTXt, decoded
    return {k: str(v) for k, v in (chunks or {}).items()}


def _manifest(text: dict[str, str]) -> dict[str, Any] | None:
    if KEY_MANIFEST not in text:
        return None
    try:
        manifest = json.loads(text[KEY_MANIFEST])
    except json.JSONDecodeError as error:
        raise ValueError(f"the manifest chunk is not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("claim"), dict):
        raise ValueError("the manifest chunk has no claim")
    return manifest


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The AI-generated record of an image file, unverified (see :func:`verify`).

    Args:
        path: an image file; only PNGs can carry the record, so any other format
            (a JPEG, say) reads as carrying none.

    Returns:
        ``None`` when the file carries none of the record's chunks, else
        ``{"ai_generated", "digital_source_type", "generator", "created", "signed",
        "claim"}`` (``claim`` is ``None`` when only the IPTC fields are present).

    Raises:
        FileNotFoundError: no file. ValueError: not an image, a corrupt one, or a
            manifest chunk that is not valid JSON.
    """
    text = _text(_open(path))
    if not {KEY_SOURCE, KEY_GENERATOR, KEY_MANIFEST} & set(text):
        return None
    manifest = _manifest(text)
    try:
        generator = json.loads(text[KEY_GENERATOR]) if KEY_GENERATOR in text else None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the generator chunk is not valid JSON ({error})") from error
    source = text.get(KEY_SOURCE)
    return {"ai_generated": source == TRAINED_ALGORITHMIC_MEDIA, "digital_source_type": source,
            "generator": generator, "created": text.get(KEY_CREATED),
            "signed": bool(manifest and manifest.get("signature")),
            "claim": manifest["claim"] if manifest else None}


def verify(path: str | Path, public_key_path: str | Path) -> Verification:
    """Check the manifest of ``path``: signed by this key, unedited, same pixels.

    Raises:
        FileNotFoundError: no file. ValueError: ``path`` is not a readable image, or the
            key file is not an Ed25519 public key.
    """
    key = load_public_key(public_key_path)
    image = _open(path)
    try:
        manifest = _manifest(_text(image))
    except ValueError as error:
        return Verification(False, "signature invalid", None, f"damaged manifest: {error}")
    if manifest is None:
        return Verification(False, "no manifest", None,
                            f"no manifest in this {image.format or 'image'} file")
    claim, signature = manifest["claim"], manifest.get("signature")
    if not signature:
        return Verification(False, "unsigned", claim, "the claim carries no signature")
    try:
        key.verify(base64.b64decode(str(signature), validate=True), _canonical(claim))
    except (InvalidSignature, ValueError):
        if claim.get("signer_key_sha256") != key_id(key):
            return Verification(False, "wrong key", claim,
                                "signed by another key (the claim names key "
                                f"{str(claim.get('signer_key_sha256'))[:12]}...)")
        return Verification(False, "signature invalid", claim,
                            "the claim or its signature was changed after signing")
    bound = {a.get("label"): a.get("data") for a in claim.get("assertions", [])}
    expected = (bound.get("aigc_course.hash.pixels") or {}).get("hash")
    if expected != pixel_hash(image):
        return Verification(False, "pixels changed", claim,
                            "the signature is good but the pixels differ from the signed hash")
    return Verification(True, "valid", claim, "signed by this key; pixels unchanged")


def strip_metadata(src: str | Path, dst: str | Path, *,
                   format: Literal["png", "jpeg"] = "png", quality: int = 90) -> Path:
    """Re-save ``src`` as a typical tool does: pixels only, every text chunk dropped.

    Pillow's ``open`` then ``save`` without ``pnginfo`` (``format="png"``: the pixels
    are kept exactly) or a JPEG conversion (``format="jpeg"``: lossy, and JPEG has no
    PNG chunks at all). Written atomically.

    Raises:
        ValueError: ``src`` is not a readable image, or an unknown ``format``.
    """
    if format not in ("png", "jpeg"):
        raise ValueError(f"unknown format {format!r}; valid: png, jpeg")
    image = _open(src)
    with atomic_write(dst) as scratch:
        if format == "png":
            image.save(scratch, format="PNG")
        else:
            image.convert("L" if image.mode in ("L", "LA", "I", "1") else "RGB").save(
                scratch, format="JPEG", quality=quality)
    return Path(dst)
