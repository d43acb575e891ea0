"""Chapter 11's metadata marking (aigc_course.provenance.manifest): the IPTC record, the signed
C2PA-style manifest, its failure reasons, and how a re-save loses it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image, PngImagePlugin

from aigc_course.provenance import manifest as mf

GENERATOR = {"kind": "gan", "checkpoint_sha256": "ab" * 32}


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "signer.pem"
    return private, mf.generate_signing_key(private)


@pytest.fixture()
def image() -> torch.Tensor:
    return torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def signed(tmp_path: Path, keys: tuple[Path, Path], image: torch.Tensor) -> Path:
    return mf.write_png(image, tmp_path / "out.png", generator=GENERATOR,
                        signing_key_path=keys[0])


def resave(src: Path, dst: Path, pixels: np.ndarray | None = None,
           edit: dict[str, str] | None = None) -> Path:
    """Save ``src`` again keeping every text chunk (what a metadata-aware editor does)."""
    image = Image.open(src)
    info = PngImagePlugin.PngInfo()
    for key, value in {**image.text, **(edit or {})}.items():
        info.add_itxt(key, value)
    out = Image.fromarray(pixels, image.mode) if pixels is not None else image
    out.save(dst, format="PNG", pnginfo=info, compress_level=1)   # other bytes, same pixels
    return dst


def test_sign_verify_round_trip(tmp_path: Path, keys: tuple[Path, Path],
                                image: torch.Tensor) -> None:
    private, public = keys
    assert public == tmp_path / "signer.pub.pem"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    path = signed(tmp_path, keys, image)
    result = mf.verify(path, public)
    assert result.valid and result.reason == "valid"
    record = mf.read_record(path)
    assert record is not None and record["ai_generated"] and record["signed"]
    assert record["digital_source_type"] == mf.TRAINED_ALGORITHMIC_MEDIA
    assert record["generator"] == GENERATOR
    labels = {a["label"]: a["data"] for a in record["claim"]["assertions"]}
    action = labels["c2pa.actions"]["actions"][0]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == mf.TRAINED_ALGORITHMIC_MEDIA
    assert "Iptc4xmpExt:DigitalSourceType" in Image.open(path).text[mf.KEY_XMP]
    # pixels as written: round((x + 1) * 127.5), and the bound hash recomputed independently
    decoded = np.asarray(Image.open(path))
    expected = np.round((image[0].numpy() + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(decoded, expected)
    digest = hashlib.sha256(b"L:16x16:" + expected.tobytes()).hexdigest()
    assert labels["aigc_course.hash.pixels"]["hash"] == digest
    # the signature is plain Ed25519 (RFC 8032) over the canonical claim bytes
    manifest = json.loads(Image.open(path).text[mf.KEY_MANIFEST])
    key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    canonical = json.dumps(manifest["claim"], sort_keys=True, separators=(",", ":")).encode()
    key.verify(base64.b64decode(manifest["signature"]), canonical)   # raises if it does not hold
    # a lossless re-save with the chunks kept: other file bytes, still valid
    copy = resave(path, tmp_path / "copy.png")
    assert copy.read_bytes() != path.read_bytes()
    assert mf.verify(copy, public).valid


def test_rgb_and_uint8_inputs(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    rgb = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = mf.write_png(rgb, tmp_path / "rgb.png", generator=GENERATOR, signing_key_path=keys[0])
    assert Image.open(path).mode == "RGB"
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb.transpose(1, 2, 0))
    assert mf.verify(path, keys[1]).valid


def test_one_flipped_pixel_breaks_the_binding(tmp_path: Path, keys: tuple[Path, Path],
                                              image: torch.Tensor) -> None:
    path = signed(tmp_path, keys, image)
    pixels = np.asarray(Image.open(path)).copy()
    pixels[3, 5] ^= 1                                             # one sample, lowest bit
    edited = resave(path, tmp_path / "edited.png", pixels=pixels)
    result = mf.verify(edited, keys[1])
    assert not result.valid and result.reason == "pixels changed"
    assert result.claim is not None


def test_tampered_claim_fails_the_signature(tmp_path: Path, keys: tuple[Path, Path],
                                            image: torch.Tensor) -> None:
    path = signed(tmp_path, keys, image)
    manifest = json.loads(Image.open(path).text[mf.KEY_MANIFEST])
    manifest["claim"]["assertions"][1]["data"]["kind"] = "camera"    # a lie about the source
    forged = resave(path, tmp_path / "forged.png", edit={mf.KEY_MANIFEST: json.dumps(manifest)})
    result = mf.verify(forged, keys[1])
    assert not result.valid and result.reason == "signature invalid"
    broken = resave(path, tmp_path / "broken.png", edit={mf.KEY_MANIFEST: "{not json"})
    assert mf.verify(broken, keys[1]).reason == "signature invalid"
    with pytest.raises(ValueError, match="not valid JSON"):
        mf.read_record(broken)


def test_another_key_is_refused(tmp_path: Path, keys: tuple[Path, Path],
                                image: torch.Tensor) -> None:
    path = signed(tmp_path, keys, image)
    other = mf.generate_signing_key(tmp_path / "other.pem")
    result = mf.verify(path, other)
    assert not result.valid and result.reason == "wrong key"


def test_unsigned_claim(tmp_path: Path, keys: tuple[Path, Path], image: torch.Tensor) -> None:
    path = mf.write_png(image, tmp_path / "plain.png", generator=GENERATOR)
    record = mf.read_record(path)
    assert record is not None and record["ai_generated"] and not record["signed"]
    assert mf.verify(path, keys[1]).reason == "unsigned"


def test_a_resave_strips_the_record(tmp_path: Path, keys: tuple[Path, Path],
                                    image: torch.Tensor) -> None:
    path = signed(tmp_path, keys, image)
    png = mf.strip_metadata(path, tmp_path / "stripped.png")
    assert mf.read_record(png) is None
    assert mf.verify(png, keys[1]).reason == "no manifest"
    np.testing.assert_array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(path)))
    jpeg = mf.strip_metadata(path, tmp_path / "stripped.jpg", format="jpeg", quality=90)
    assert Image.open(jpeg).format == "JPEG"
    assert mf.read_record(jpeg) is None
    assert mf.verify(jpeg, keys[1]).reason == "no manifest"
    with pytest.raises(ValueError, match="valid: png, jpeg"):
        mf.strip_metadata(path, tmp_path / "x.gif", format="gif")  # type: ignore[arg-type]


def test_non_png_and_corrupt_files(tmp_path: Path, keys: tuple[Path, Path],
                                   image: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="writes PNG files"):
        mf.write_png(image, tmp_path / "out.jpg", generator=GENERATOR)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        mf.read_record(text)
    path = signed(tmp_path, keys, image)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(path.read_bytes()[:120])
    with pytest.raises(ValueError, match="not a readable image"):
        mf.verify(truncated, keys[1])
    with pytest.raises(FileNotFoundError):
        mf.read_record(tmp_path / "missing.png")


def test_foreign_key_files(tmp_path: Path, keys: tuple[Path, Path],
                           image: torch.Tensor) -> None:
    private, public = keys
    path = signed(tmp_path, keys, image)
    with pytest.raises(ValueError, match="holds a private key"):
        mf.verify(path, private)
    with pytest.raises(ValueError, match="holds a public key"):
        mf.write_png(image, tmp_path / "b.png", generator=GENERATOR, signing_key_path=public)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private, ec_public = tmp_path / "ec.pem", tmp_path / "ec.pub.pem"
    ec_private.write_bytes(ec_key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    ec_public.write_bytes(ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        mf.verify(path, ec_public)
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        mf.write_png(image, tmp_path / "c.png", generator=GENERATOR, signing_key_path=ec_private)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x00\x01 not a key")
    with pytest.raises(ValueError, match="not a PEM"):
        mf.verify(path, garbage)
    damaged = tmp_path / "damaged.pub.pem"
    damaged.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValueError, match="not a PEM public key"):
        mf.verify(path, damaged)
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "c.png").exists()
    with pytest.raises(FileExistsError):
        mf.generate_signing_key(private)


def test_bad_images_and_generators(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match=r"C = 1 or 3.*\(2, 4, 4\)"):
        mf.write_png(torch.zeros(2, 4, 4), out, generator=GENERATOR)
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        mf.write_png(torch.full((1, 4, 4), 2.0), out, generator=GENERATOR)
    with pytest.raises(ValueError, match="dtype int64"):
        mf.write_png(np.zeros((1, 4, 4), dtype=np.int64), out, generator=GENERATOR)
    with pytest.raises(ValueError, match="64 hex digits"):
        mf.write_png(torch.zeros(1, 4, 4), out, generator={"kind": "gan"})
    with pytest.raises(ValueError, match="'kind' string"):
        mf.write_png(torch.zeros(1, 4, 4), out, generator={"checkpoint_sha256": "ab" * 32})
    assert not out.exists()


def test_generator_info_hashes_the_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    info = mf.generator_info("vae", checkpoint, steps=3)
    assert info == {"kind": "vae", "checkpoint": "model.pt", "steps": 3,
                    "checkpoint_sha256": hashlib.sha256(b"weights").hexdigest()}
