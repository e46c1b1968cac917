"""The signed report: `puente audit --sign-key` signs MANIFEST.sha256 with the real minisign, and
`puente audit verify -p KEY.pub` refuses every kind of tampering with one FAIL line per problem.

One synthetic audit run (one control, no xdist) is signed; each tampering works on a copy of it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_synthetic import Synthetic

from puente.audit import manifest, signing
from puente.cli import main

PASSWORD = "correct horse battery staple"
MINISIGN = shutil.which("minisign")
pytestmark = pytest.mark.skipif(
    MINISIGN is None, reason="Debian's minisign is not installed (scripts/bootstrap.sh installs it)"
)


def generate(directory: Path, name: str) -> tuple[Path, Path, str]:
    """A throwaway key pair without a password (`minisign -G -W`); returns key, public key, key id."""
    key, pub = directory / f"{name}.key", directory / f"{name}.pub"
    subprocess.run(["minisign", "-G", "-W", "-p", str(pub), "-s", str(key)], check=True, capture_output=True)
    key_id = pub.read_text().splitlines()[0].rsplit(" ", 1)[1]  # "untrusted comment: minisign public key ID"
    return key, pub, key_id


def with_password(plain: Path, target: Path, password: str) -> Path:
    """The same secret key, protected by ``password`` as `minisign -C` would, at libsodium's minimum scrypt
    limits. minisign's own limits cost ~3 s per use here; the key file records the limits it was made with,
    so minisign decrypts this one with the same code path in milliseconds."""
    comment, line = plain.read_text().splitlines()[:2]
    raw = base64.b64decode(line)
    assert raw[2:4] == b"\0\0", "expected a key made with -W"
    keynum_sk = raw[54:126]  # key id + Ed25519 secret key; the checksum (blake2b-256) follows
    checksum = hashlib.blake2b(raw[0:2] + keynum_sk, digest_size=32).digest()
    salt, opslimit, memlimit = os.urandom(32), 32768, 16 << 20  # scrypt N=2^10, r=8, p=1 in libsodium
    stream = hashlib.scrypt(password.encode(), salt=salt, n=1 << 10, r=8, p=1, dklen=104)
    sealed = bytes(a ^ b for a, b in zip(keynum_sk + checksum, stream, strict=True))
    limits = opslimit.to_bytes(8, "little") + memlimit.to_bytes(8, "little")
    body = raw[0:2] + b"Sc" + raw[4:6] + salt + limits
    target.write_text(f"{comment}\n{base64.b64encode(body + sealed).decode()}\n")
    return target


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    d = tmp_path_factory.mktemp("keys")
    key, pub, key_id = generate(d, "auditor")
    other_key, other_pub, other_id = generate(d, "intruder")
    (d / "password").write_text(PASSWORD + "\n")
    locked = with_password(key, d / "auditor-pw.key", PASSWORD)
    return {
        "key": key,
        "pub": pub,
        "id": key_id,
        "locked": locked,
        "password_file": d / "password",
        "other_key": other_key,
        "other_pub": other_pub,
        "other_id": other_id,
    }


@pytest.fixture(scope="module")
def signed(synthetic: Synthetic, keys: dict) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`puente audit --sign-key` with the password-protected key, its password in a file."""
    out = synthetic.root / "signed"
    proc = synthetic.audit(
        out,
        "-k",
        "PUENTE-DEMO-02",
        "--workers",
        "0",
        "--sign-key",
        str(keys["locked"]),
        "--sign-password-file",
        str(keys["password_file"]),
    )
    return proc, out


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    """`puente audit verify ...` in this process: exit code, its FAIL lines, all it printed."""
    rc = main(["audit", "verify", *argv])
    captured = capsys.readouterr()
    fails = [line for line in captured.out.splitlines() if line.startswith("FAIL ")]
    return rc, fails, captured.out + captured.err


def test_audit_signs_the_manifest_and_minisign_alone_accepts_it(signed, keys):
    proc, out = signed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.sha256",
        "MANIFEST.sha256.minisig",
        "junit.xml",
        "report.html",
        "report.json",
    ]
    # the command is printed like every other step; the password reaches minisign on stdin, never argv
    printed = next(line for line in proc.stderr.splitlines() if line.startswith("+ minisign -S"))
    assert f"-s {keys['locked']} -m {out}/MANIFEST.sha256 -t " in printed
    assert PASSWORD not in proc.stdout + proc.stderr
    assert f"signed: {out}/MANIFEST.sha256.minisig" in proc.stdout
    # anyone can check it with minisign itself, without Puente
    plain = subprocess.run(
        ["minisign", "-V", "-p", str(keys["pub"]), "-m", "MANIFEST.sha256"],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    comment = next(line for line in plain.stdout.splitlines() if line.startswith("Trusted comment: "))
    assert f"inventory {Path(out).parent / 'hosts.yml'}" in comment and "result pass" in comment
    assert "started 20" in comment and "signed 20" in comment


@pytest.mark.parametrize("how", ["-p", "-P"])
def test_verify_accepts_the_signed_report(signed, keys, capsys, how):
    _, out = signed
    key = str(keys["pub"]) if how == "-p" else Path(keys["pub"]).read_text().splitlines()[1]
    rc, fails, said = verify(capsys, str(out), how, key)
    assert (rc, fails) == (0, []), said
    assert f"OK: MANIFEST.sha256 signed by key {keys['id']}: puente audit of inventory" in said
    assert "OK: 3 files match" in said


def _edit(path: Path) -> None:
    path.write_text(path.read_text().replace('"pass"', '"fail"', 1) + " ")


def _edit_and_reseal(d: Path) -> None:
    """What someone who changed a file would do next: recompute the manifest."""
    _edit(d / "report.json")
    manifest.write(d)


def _resign_with_another_key(keys: dict) -> Callable[[Path], None]:
    def tamper(d: Path) -> None:
        _edit_and_reseal(d)
        (d / signing.SIG_NAME).unlink()
        subprocess.run(
            ["minisign", "-S", "-s", str(keys["other_key"]), "-m", str(d / manifest.NAME)],
            check=True,
            capture_output=True,
        )

    return tamper


def _change_trusted_comment(d: Path) -> None:
    sig = d / signing.SIG_NAME
    lines = sig.read_text().splitlines()
    assert lines[2].startswith("trusted comment: puente audit of inventory ")
    lines[2] += " (reviewed)"
    sig.write_text("\n".join(lines) + "\n")


TAMPERINGS: dict[str, tuple[str, list[str]]] = {
    # case: (how, the FAIL lines expected, each a prefix)
    "a file edited": ("edit", ["FAIL report.json: MODIFIED (sha256 differs from the manifest)"]),
    "manifest rewritten to match": (
        "reseal",
        ["FAIL MANIFEST.sha256: signature does not match: the manifest was changed after signing"],
    ),
    "manifest line edited": (
        "manifest",
        ["FAIL MANIFEST.sha256: signature does not match", "FAIL junit.xml: MODIFIED"],
    ),
    "a file added": ("add", ["FAIL notes.txt: not in the manifest (added after the report was made)"]),
    "a file removed": ("remove", ["FAIL report.html: missing"]),
    "signature deleted": ("unsign", ["FAIL MANIFEST.sha256.minisig: missing: the report is not signed"]),
    "signed with another key": (
        "other",
        ["FAIL MANIFEST.sha256.minisig: made by key {other_id}, not by the given public key {id}"],
    ),
    "trusted comment edited": (
        "comment",
        ["FAIL MANIFEST.sha256.minisig: its trusted comment was changed after signing"],
    ),
    "signature damaged": (
        "garble",
        ["FAIL MANIFEST.sha256.minisig: not a minisign signature (damaged or replaced)"],
    ),
}


def _manifest_line(d: Path) -> None:
    m = d / manifest.NAME
    lines = m.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.endswith("junit.xml"))
    lines[i] = "0" * 64 + lines[i][64:]
    m.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("case", list(TAMPERINGS))
def test_verify_refuses_a_tampered_report(signed, keys, capsys, tmp_path: Path, case: str):
    _, out = signed
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    how, expected = TAMPERINGS[case]
    tamper: dict[str, Callable[[Path], None]] = {
        "edit": lambda d: _edit(d / "report.json"),
        "reseal": _edit_and_reseal,
        "manifest": _manifest_line,
        "add": lambda d: (d / "notes.txt").write_text("all fine\n"),
        "remove": lambda d: (d / "report.html").unlink(),
        "unsign": lambda d: (d / signing.SIG_NAME).unlink(),
        "other": _resign_with_another_key(keys),
        "comment": _change_trusted_comment,
        "garble": lambda d: (d / signing.SIG_NAME).write_text("untrusted comment: x\nnot base64 at all\n"),
    }
    tamper[how](copy)
    rc, fails, said = verify(capsys, str(copy), "-p", str(keys["pub"]))
    assert rc == 1, said
    wanted = [e.format(**keys) for e in expected]
    assert len(fails) == len(wanted), said
    for line, prefix in zip(sorted(fails), sorted(wanted), strict=True):
        assert line.startswith(prefix), said
    assert "verification FAILED" in said


def test_without_a_public_key_verify_says_the_signature_was_not_checked(signed, capsys):
    _, out = signed
    rc, fails, said = verify(capsys, str(out))
    assert (rc, fails) == (0, []), said
    assert "NOTE: MANIFEST.sha256.minisig not checked" in said


def test_verify_bad_input_exits_2(signed, keys, capsys, tmp_path: Path):
    _, out = signed
    cases = [
        ([str(tmp_path / "nowhere"), "-p", str(keys["pub"])], "is not a directory"),
        ([str(out), "-p", str(tmp_path / "missing.pub")], "cannot read it: No such file or directory"),
        ([str(out), "-p", str(keys["key"])], "not a minisign public key"),  # the secret key by mistake
        ([str(out), "-P", "RWQnotakey"], "-P public key: not a minisign public key"),
    ]
    for argv, message in cases:
        rc, _, said = verify(capsys, *argv)
        assert rc == 2 and message in said, (argv, said)


def test_a_key_that_cannot_sign_stops_the_audit_before_any_host(
    synthetic: Synthetic, keys, capsys, monkeypatch, tmp_path: Path
):
    monkeypatch.delenv(signing.PASSWORD_ENV, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal: minisign could not ask
    base = ["audit", "-i", str(synthetic.inventory), "--catalogue", str(synthetic.controls)]
    cases = [
        (
            ["--sign-key", str(keys["locked"])],
            "is password-protected: give --sign-password-file FILE or set PUENTE_AUDIT_SIGN_PASSWORD",
        ),
        (["--sign-key", str(tmp_path / "none.key")], "cannot read it: No such file or directory"),
        (["--sign-key", str(keys["pub"])], "not a minisign secret key"),
        (["--sign-key", str(keys["key"]), "--sign-password-file", str(tmp_path / "none")], "password file"),
    ]
    for n, (extra, message) in enumerate(cases):
        out = tmp_path / f"out{n}"
        rc = main([*base, "--out", str(out), *extra])
        said = capsys.readouterr().err
        assert rc == 2 and message in said, (extra, said)
        assert not out.exists(), "the audit ran although the report could not have been signed"


def test_signing_takes_the_password_from_the_environment_and_reports_a_wrong_one(
    signed, keys, monkeypatch, tmp_path: Path
):
    _, out = signed
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    (copy / signing.SIG_NAME).unlink()
    locked = signing.read_secret_key(Path(keys["locked"]))
    assert locked.encrypted and not signing.read_secret_key(Path(keys["key"])).encrypted
    monkeypatch.setenv(signing.PASSWORD_ENV, "wrong")
    with pytest.raises(signing.SigningError, match="Wrong password for that key"):
        signing.sign(copy, locked, signing.password(None), "test")
    assert not (copy / signing.SIG_NAME).exists()
    monkeypatch.setenv(signing.PASSWORD_ENV, PASSWORD)
    sig = signing.sign(copy, locked, signing.password(None), "signed from the environment")
    check = signing.verify(copy, signing.public_key(Path(keys["pub"])))
    assert sig.is_file() and check.problems == [] and check.trusted_comment == "signed from the environment"
