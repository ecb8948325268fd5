"""``ketenpoort eckid``: hash, sandbox and validate, driven through typer's CliRunner.

Most hash tests swap in tiny scrypt parameters (the CLI reads ``domain.nv1.NV1_PARAMS``
when it runs); one test hashes a line with the real parameters end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.eckid import app
from domain import nv1
from domain.identifiers import Sector
from domain.nv1 import ScryptParams, hash_identifier
from domain.sandbox import sandbox_eck_id

SALT = "rktYml0MIp9TC9u6Ny6uqw=="
CHEAP = ScryptParams(n=16, r=1, p=1)
KEY = "ketenpoort-test-sandbox-key"
BSN = "111222333"
ONDERWIJSNUMMER = "101222331"
TEST_BSN = "999993653"
HEX = "ab" * 64
PRODUCTION = "https://ketenid.nl/201703/"
PILOT = "https://ketenid.nl/pilot/"

ENV_VARS = ("KETENPOORT_NV1_SALT", "KETENPOORT_SANDBOX_KEY", "KETENPOORT_ENVIRONMENT")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def cheap_nv1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nv1, "NV1_PARAMS", CHEAP)


def cheap(pgn: str) -> str:
    return hash_identifier(pgn, SALT, params=CHEAP)


# ---------------------------------------------------------------------------- hash


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_writes_pgn_and_hash_per_line_in_input_order(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["hash", "-", "--workers", "1"],
        input=f"{BSN}\n{ONDERWIJSNUMMER}\n{TEST_BSN}\n",
        env={"KETENPOORT_NV1_SALT": SALT},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{BSN},{cheap(BSN)}",
        f"{ONDERWIJSNUMMER},{cheap(ONDERWIJSNUMMER)}",
        f"{TEST_BSN},{cheap(TEST_BSN)}",
    ]
    assert "hashed 3 identifiers" in result.stderr


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_across_processes_keeps_input_order(runner: CliRunner) -> None:
    pgns = [BSN, ONDERWIJSNUMMER, TEST_BSN] * 4
    result = runner.invoke(
        app,
        ["hash", "--workers", "2", "--hash-only", "--salt", SALT],
        input="".join(f"{pgn}\n" for pgn in pgns),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [cheap(pgn) for pgn in pgns]


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_writes_the_nine_digit_form_it_hashed(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hash", "--workers", "1", "--salt", SALT], input="1112.22.333\n")
    assert result.stdout == f"{BSN},{cheap(BSN)}\n"


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_reads_a_file_and_writes_the_output_file(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "pgns.txt"
    # A byte-order mark and blank lines, as spreadsheet exports have them.
    source.write_text(f"\ufeff{BSN}\r\n\r\n{TEST_BSN}\r\n", encoding="utf-8")
    target = tmp_path / "hashes.txt"
    result = runner.invoke(
        app,
        ["hash", str(source), "-o", str(target), "--hash-only", "--workers", "1", "--salt", SALT],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert target.read_text().splitlines() == [cheap(BSN), cheap(TEST_BSN)]


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_reports_invalid_lines_by_number_and_fails_at_the_end(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["hash", "--workers", "1", "--salt", SALT],
        input=f"{BSN}\n111252333\n12\n{TEST_BSN}\n",
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{BSN},{cheap(BSN)}", f"{TEST_BSN},{cheap(TEST_BSN)}"]
    assert "line 2: pgn fails the 11-test" in result.stderr
    assert "line 3: pgn has 2 digits" in result.stderr
    assert "2 invalid line(s)" in result.stderr


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_takes_teachers_identifiers_beside_pgns(runner: CliRunner) -> None:
    teacher = "20DP teacher@school.com"
    with_comma = "Jansen, J. <j.jansen@school.nl>"
    result = runner.invoke(
        app,
        ["hash", "--workers", "1", "--salt", SALT],
        input=f"{BSN}\n{teacher}\n {with_comma} \n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{BSN},{cheap(BSN)}",
        f"{teacher},{cheap(teacher)}",
        f'"{with_comma}",{cheap(with_comma)}',
    ]
    assert "hashed 3 identifiers" in result.stderr


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_never_echoes_an_invalid_pgn(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hash", "--workers", "1", "--salt", SALT], input="111252333\n")
    assert "111252333" not in result.output


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_with_skip_invalid_reports_but_exits_zero(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["hash", "--workers", "1", "--salt", SALT, "--skip-invalid"],
        input=f"{BSN}\n12\n",
    )
    assert result.exit_code == 0
    assert "line 2:" in result.stderr
    assert result.stdout == f"{BSN},{cheap(BSN)}\n"


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_quiet_prints_nothing_on_stderr(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hash", "--workers", "1", "--salt", SALT, "-q"], input=f"{BSN}\n")
    assert result.exit_code == 0
    assert result.stderr == ""


@pytest.mark.usefixtures("cheap_nv1")
def test_hash_progress_bar_can_be_forced_on(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["hash", "--workers", "1", "--salt", SALT, "--progress"], input=f"{BSN}\n{BSN}\n"
    )
    assert result.exit_code == 0
    assert "2/2" not in result.stderr  # stdin has no known total
    assert "2id" in result.stderr.replace(" ", "")


def test_hash_dry_run_validates_without_hashing(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("a dry run must not hash")

    monkeypatch.setattr("cli.eckid.hash_many", refuse)
    target = tmp_path / "out.txt"
    result = runner.invoke(
        app,
        ["hash", "--salt", SALT, "--dry-run", "-o", str(target)],
        input=f"{BSN}\n12\n{TEST_BSN}\n",
    )
    assert result.exit_code == 1
    assert "validated (dry run, nothing hashed) 2 identifiers" in result.stderr
    assert "line 2:" in result.stderr
    assert not target.exists()


def test_hash_reproduces_both_of_kennisnets_reference_inputs(runner: CliRunner) -> None:
    # The real NV-1 parameters, Kennisnet's pupil and teacher inputs and answers.
    result = runner.invoke(
        app,
        ["hash", "--workers", "2", "--hash-only"],
        input="063138219\n20DP teacher@school.com\n",
        env={"KETENPOORT_NV1_SALT": SALT},
    )
    assert result.stdout.splitlines() == [
        "9735dfd2235eaeb5f0300886bcc99c82ffc1d6420c4e0bde8de7218def2135fa",
        "0b870ff044775ef0360655c40d5b284b7e3ae2b72207a6894794d787eb019e60",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hash"], "no salt"),
        (["hash", "--salt", "not base64!"], "Base64"),
        (["hash", "--salt", SALT, "/nonexistent/pgns.txt"], "cannot read"),
    ],
)
def test_hash_without_a_usable_salt_or_input_is_a_usage_error(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(app, args, input=f"{BSN}\n")
    assert result.exit_code == 2
    assert message in result.stderr


# ------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize("environment", ["production", "PRODUCTION", " production "])
def test_sandbox_refuses_to_run_in_production(runner: CliRunner, environment: str) -> None:
    result = runner.invoke(
        app,
        ["sandbox", "--key", KEY],
        input=f"{TEST_BSN}\n",
        env={"KETENPOORT_ENVIRONMENT": environment},
    )
    assert result.exit_code == 2
    assert "never made in production" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("environment", ["development", "test", ""])
def test_sandbox_writes_pilot_eck_ids_outside_production(
    runner: CliRunner, environment: str
) -> None:
    result = runner.invoke(
        app,
        ["sandbox", "--sector", "VO"],
        input=f"{TEST_BSN}\n{BSN}\n",
        env={"KETENPOORT_ENVIRONMENT": environment, "KETENPOORT_SANDBOX_KEY": KEY},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        sandbox_eck_id(TEST_BSN, Sector.VO, KEY.encode()),
        sandbox_eck_id(BSN, Sector.VO, KEY.encode()),
    ]
    assert all(line.startswith(PILOT) for line in result.stdout.splitlines())


def test_sandbox_reports_invalid_lines(runner: CliRunner) -> None:
    result = runner.invoke(app, ["sandbox", "--key", KEY], input=f"{TEST_BSN}\n999993654\n")
    assert result.exit_code == 1
    assert "line 2: pgn fails the 11-test" in result.stderr
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sandbox"], "no sandbox key"),
        (["sandbox", "--key", "short"], "at least 16 bytes"),
    ],
)
def test_sandbox_without_a_usable_key_is_a_usage_error(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(app, args, input=f"{TEST_BSN}\n")
    assert result.exit_code == 2
    assert message in result.stderr


def test_sandbox_refuses_an_unknown_sector(runner: CliRunner) -> None:
    result = runner.invoke(app, ["sandbox", "--key", KEY, "--sector", "wo"], input=TEST_BSN)
    assert result.exit_code == 2


# ------------------------------------------------------------------------ validate


def test_validate_reports_each_line(runner: CliRunner) -> None:
    lines = [PRODUCTION + HEX, PILOT + HEX.upper(), "", PRODUCTION + HEX[:-1], "nonsense"]
    result = runner.invoke(app, ["validate"], input="\n".join(lines) + "\n")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "1\tok\tproduction",
        "2\tok\tpilot",
        "4\tlength\tECK iD has 127 hex characters after the prefix; 128 are required",
        "5\tprefix\tECK iD must start with one of: https://ketenid.nl/201703/ (production), "
        "https://ketenid.nl/pilot/ (pilot), https://ketenid.nl/sppilot/ (sppilot)",
    ]


def test_validate_exits_zero_when_every_line_is_valid(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate"], input=f"{PRODUCTION}{HEX}\n")
    assert result.exit_code == 0
    assert result.stdout == "1\tok\tproduction\n"


def test_validate_production_only_refuses_pilot_ids(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", "--production-only"], input=f"{PILOT}{HEX}\n")
    assert result.exit_code == 1
    assert result.stdout.startswith("1\tenvironment\t")


def test_app_without_a_command_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert "hash" in result.output
    assert "sandbox" in result.output
    assert "validate" in result.output
