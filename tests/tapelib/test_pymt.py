"""pymt behaves as mt-st's ``mt`` on a loopback drive: same commands, output,
messages and exit statuses (/tmp/st-facts.md sections 4, 5 and 7).

Every test runs the installed ``pymt`` script as a separate process, the way
a shell script would; positions are checked with ``pymt status``/``tell`` or
by reading in yet another process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli_processes import checkout_env, drive_held, error_line, run_script
from tapelib import Shelf, TapeError, TapeStatus, open_device
from snapdump.exits import CommandFailed
from tapelib.cli.mtstatus import format_status
from tapelib.cli.pymt import COMMANDS, find_command, parse_count

# The tape every motion test starts from: three files, each ending in a
# filemark.  Logical block addresses: f0r0=0 f0r1=1 f0r2=2 FM=3 f1r0=4 f1r1=5
# FM=6 f2r0=7 FM=8, end of data at 9.
LAYOUT = [[b"f0r0", b"f0r1", b"f0r2"], [b"f1r0", b"f1r1"], [b"f2r0"]]

# mt-st's output for a SCSI-2 drive, copied from the fact sheet (section 7):
# no real st drive exists here to run the real `mt` against.
MT_ST_STATUS_AT_BOT = """\
SCSI 2 tape drive:
File number=0, block number=0, partition=0.
Tape block size 0 bytes. Density code 0x0 (default).
Soft error count since last status=0
General status bits on (41010000):
 BOT ONLINE IM_REP_EN
"""
MT_ST_AFTER_ONE_FILEMARK = ("File number=1, block number=0, partition=0.",
                            "General status bits on (81010000):", " EOF ONLINE IM_REP_EN")
MT_ST_NO_TAPE = ("File number=-1, block number=-1, partition=0.",
                 "General status bits on (50000):", " DR_OPEN IM_REP_EN")


def pymt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_script("pymt", *args, env=env)


def mt_ok(device: str, *args: str) -> str:
    """Run ``pymt -f device args`` and return its stdout; it must succeed quietly."""
    result = pymt("-f", device, *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def status_lines(device: str) -> list[str]:
    return mt_ok(device, "status").splitlines()


def file_and_block(device: str) -> str:
    return status_lines(device)[1]


def bits(device: str) -> tuple[str, str]:
    lines = status_lines(device)
    return lines[4], lines[5]


def tell(device: str) -> str:
    return mt_ok(device, "tell").strip()


def read_in_another_process(device: str) -> bytes:
    """The next record at ``device``'s position, read by a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys\n"
         "from tapelib import open_device\n"
         "with open_device(sys.argv[1]) as drive:\n"
         "    sys.stdout.buffer.write(drive.read(65536))\n",
         device],
        capture_output=True, env=checkout_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_layout_intact(device: str, layout: list[list[bytes]] = LAYOUT) -> None:
    """The tape still holds ``layout`` from BOT (reads stop at the last filemark)."""
    expected = [record for records in layout for record in [*records, b""]]
    with open_device(device) as drive:
        drive.rewind()
        assert [drive.read(65536) for _ in expected] == expected


@pytest.fixture
def tape(nst0: str) -> str:
    """``nst0`` holding LAYOUT, at BOT."""
    with open_device(nst0, writable=True) as drive:
        for records in LAYOUT:
            for record in records:
                drive.write(record)
            drive.write_filemarks(1)
        drive.rewind()
    return nst0


# -- status: mt-st's layout, line for line ------------------------------------


def test_status_at_bot_is_mt_sts_example_line_for_line(nst0: str) -> None:
    out = mt_ok(nst0, "status")
    assert out.startswith(MT_ST_STATUS_AT_BOT)


def test_status_after_fsf_matches_mt_sts_after_filemark_example(tape: str) -> None:
    mt_ok(tape, "fsf", "1")
    lines = status_lines(tape)
    assert (lines[1], lines[4], lines[5]) == MT_ST_AFTER_ONE_FILEMARK


def test_status_of_an_empty_drive_matches_mt_sts_no_tape_example(shelf: Shelf) -> None:
    lines = status_lines(str(shelf.device_path(1, rewind=False)))
    assert (lines[1], lines[4], lines[5]) == MT_ST_NO_TAPE


@pytest.mark.parametrize("verb", ["offline", "rewoffl", "eject"])
def test_offline_leaves_the_door_open_as_st_reports_no_tape(tape: str, verb: str) -> None:
    # st: MTOFFL sets ready=NO_TAPE; the next open finds no tape and reports
    # file/block -1 with DR_OPEN (fact sheet 4, 6 and the no-tape example in 7).
    mt_ok(tape, "fsf", "1")
    assert mt_ok(tape, verb) == ""
    lines = status_lines(tape)
    assert (lines[1], lines[4], lines[5]) == MT_ST_NO_TAPE
    assert_layout_intact_after_load(tape)


def assert_layout_intact_after_load(device: str) -> None:
    mt_ok(device, "load")
    assert_layout_intact(device)


def test_status_trailer_names_the_loopback_cartridge(nst0: str) -> None:
    lines = status_lines(nst0)
    assert len(lines) == 7
    assert lines[6] == "Cartridge TEST01: capacity 4194304 bytes, 0 bytes used."


def test_status_of_a_protected_cartridge_shows_wr_prot_in_mt_sts_order(shelf: Shelf, nst0: str) -> None:
    shelf.set_write_protect("TEST01", True)
    assert bits(nst0) == ("General status bits on (45010000):", " BOT WR_PROT ONLINE IM_REP_EN")
    assert status_lines(nst0)[6].endswith(", write-protected.")


def test_status_after_eod_shows_eod_and_unknown_block_as_st(tape: str) -> None:
    # st MTEOM: file = filemarks crossed, block -1, GMT_EOD; %lx drops the leading zero.
    mt_ok(tape, "eod")
    assert file_and_block(tape) == "File number=3, block number=-1, partition=0."
    assert bits(tape) == ("General status bits on (9010000):", " EOD ONLINE IM_REP_EN")


def test_status_after_weof_shows_eof_as_st(tape: str) -> None:
    # st: MTWEOF leaves block 0 in the next file, and GMT_EOF is blkno==0 && fileno!=0.
    mt_ok(tape, "eod")
    mt_ok(tape, "weof")
    assert file_and_block(tape) == "File number=4, block number=0, partition=0."
    assert bits(tape) == ("General status bits on (81010000):", " EOF ONLINE IM_REP_EN")


@pytest.mark.parametrize(("status", "expected"), [
    (TapeStatus(bot=True, online=True),
     MT_ST_STATUS_AT_BOT.splitlines()),
    (TapeStatus(drive_type=0x71, file_number=2, block_number=7, block_size=512, density=0x58,
                online=True),
     ["SCSI 1 tape drive:", "File number=2, block number=7.",
      "Tape block size 512 bytes. Density code 0x58 (LTO-5).",
      "Soft error count since last status=0",
      "General status bits on (1010000):", " ONLINE IM_REP_EN"]),
    (TapeStatus(file_number=-1, block_number=-1, density=0x99, residual=1, eof=True, bot=True,
                eot=True, eod=True, write_protected=True, online=True, door_open=True),
     ["SCSI 2 tape drive:", "File number=-1, block number=-1, partition=1.",
      "Tape block size 0 bytes. Density code 0x99 (no translation).",
      "Soft error count since last status=0",
      "General status bits on (ed050000):", " EOF BOT EOT EOD WR_PROT ONLINE DR_OPEN IM_REP_EN"]),
])
def test_status_lines_follow_mt_sts_do_status(status: TapeStatus, expected: list[str]) -> None:
    assert format_status(status) == expected


# -- every verb does what it says ----------------------------------------------


def test_fsf_lands_at_the_start_of_the_next_file_where_another_process_reads(tape: str) -> None:
    mt_ok(tape, "fsf", "2")
    assert file_and_block(tape) == "File number=2, block number=0, partition=0."
    assert tell(tape) == "At block 7."
    assert read_in_another_process(tape) == b"f2r0"


def test_fsf_without_count_spaces_one_file(tape: str) -> None:
    mt_ok(tape, "fsf")
    assert tell(tape) == "At block 4."
    assert read_in_another_process(tape) == b"f1r0"


def test_fsr_and_bsr_move_by_records(tape: str) -> None:
    mt_ok(tape, "fsr", "2")
    assert file_and_block(tape) == "File number=0, block number=2, partition=0."
    mt_ok(tape, "bsr", "1")
    assert file_and_block(tape) == "File number=0, block number=1, partition=0."
    assert tell(tape) == "At block 1."
    assert read_in_another_process(tape) == b"f0r1"


def test_bsf_lands_before_the_filemark_with_block_unknown(tape: str) -> None:
    mt_ok(tape, "fsf", "2")
    mt_ok(tape, "bsf", "1")
    assert file_and_block(tape) == "File number=1, block number=-1, partition=0."
    assert tell(tape) == "At block 6."


def test_fsfm_stops_before_the_filemark(tape: str) -> None:
    mt_ok(tape, "fsfm", "1")
    assert file_and_block(tape) == "File number=0, block number=-1, partition=0."
    assert tell(tape) == "At block 3."


def test_bsfm_returns_to_the_start_of_the_current_file(tape: str) -> None:
    mt_ok(tape, "fsf", "1")
    mt_ok(tape, "fsr", "1")
    mt_ok(tape, "bsfm", "1")
    assert file_and_block(tape) == "File number=1, block number=0, partition=0."
    assert read_in_another_process(tape) == b"f1r0"


@pytest.mark.parametrize("verb", ["eod", "seod"])
def test_eod_goes_to_the_end_of_data(tape: str, verb: str) -> None:
    mt_ok(tape, verb)
    assert tell(tape) == "At block 9."


def test_rewind_returns_to_bot(tape: str) -> None:
    mt_ok(tape, "fsf", "2")
    assert mt_ok(tape, "rewind") == ""
    assert mt_ok(tape, "status").startswith(MT_ST_STATUS_AT_BOT)


def test_seek_goes_to_a_logical_block_and_tell_reports_it(tape: str) -> None:
    mt_ok(tape, "seek", "5")
    assert tell(tape) == "At block 5."
    assert read_in_another_process(tape) == b"f1r1"


def test_seek_leaves_file_and_block_unknown_as_st(tape: str) -> None:
    # st's set_location: file and block -1 after MTSEEK, unless to block 0.
    mt_ok(tape, "seek", "5")
    assert file_and_block(tape) == "File number=-1, block number=-1, partition=0."


def test_asf_rewinds_then_spaces_files(tape: str) -> None:
    mt_ok(tape, "fsf", "2")
    mt_ok(tape, "asf", "1")
    assert tell(tape) == "At block 4."


@pytest.mark.parametrize("verb", ["weof", "eof"])
def test_weof_writes_filemarks_and_ends_the_data_there(tape: str, verb: str) -> None:
    mt_ok(tape, "fsf", "1")
    mt_ok(tape, verb, "2")
    mt_ok(tape, "eod")
    assert tell(tape) == "At block 6."
    assert_layout_intact(tape, [LAYOUT[0], [], []])


def test_erase_removes_everything_after_the_position(tape: str) -> None:
    mt_ok(tape, "fsf", "1")
    mt_ok(tape, "erase")
    assert file_and_block(tape) == "File number=1, block number=0, partition=0."
    mt_ok(tape, "eod")
    assert tell(tape) == "At block 4."
    assert_layout_intact(tape, [LAYOUT[0]])


def test_setblk_sets_the_block_size_reported_by_status(tape: str) -> None:
    mt_ok(tape, "setblk", "512")
    assert status_lines(tape)[2] == "Tape block size 512 bytes. Density code 0x0 (default)."
    mt_ok(tape, "setblk", "0")
    assert status_lines(tape)[2] == "Tape block size 0 bytes. Density code 0x0 (default)."


def test_load_brings_an_ejected_cartridge_online_at_bot(tape: str) -> None:
    mt_ok(tape, "fsf", "1")
    mt_ok(tape, "offline")
    mt_ok(tape, "load")
    assert mt_ok(tape, "status").startswith(MT_ST_STATUS_AT_BOT)


@pytest.mark.parametrize("verb", ["retension", "lock", "unlock"])
def test_housekeeping_verbs_succeed_silently(tape: str, verb: str) -> None:
    assert mt_ok(tape, verb) == ""
    assert_layout_intact(tape)


def test_wset_is_refused_because_loopback_drives_have_no_setmarks(tape: str) -> None:
    result = pymt("-f", tape, "wset")
    assert result.returncode == 2
    assert error_line(result).startswith(f"{tape}: ")
    assert "MTWSM" in error_line(result)
    assert_layout_intact(tape)


# -- command names, as mt-st matches them ---------------------------------------


@pytest.mark.parametrize(("word", "name"), [
    ("rewi", "rewind"), ("stat", "status"), ("fsf", "fsf"), ("fsfm", "fsfm"),
    ("of", "offline"), ("rewo", "rewoffl"), ("ej", "eject"), ("te", "tell"), ("seo", "seod"), ("see", "seek"),
])
def test_unique_prefixes_and_exact_names_select_a_command(word: str, name: str) -> None:
    assert find_command(word).name == name


def test_every_mt_st_command_name_is_recognised() -> None:
    names = [c.name for c in COMMANDS]
    assert names[:21] == ["weof", "wset", "eof", "fsf", "fsfm", "bsf", "bsfm", "fsr", "bsr", "fss",
                          "bss", "rewind", "offline", "rewoffl", "eject", "retension", "eod",
                          "seod", "seek", "tell", "status"]
    assert len(names) == len(set(names)) == 46
    # the real mt-st's table, from its usage text: the same commands in the same order
    usage = subprocess.run(["mt", "-h"], capture_output=True, text=True).stderr
    listed = usage[usage.index("commands:") + len("commands:"):]
    assert [w.strip(" ,.\n") for w in listed.split(",")] == names


def test_a_prefix_runs_the_command(tape: str) -> None:
    mt_ok(tape, "fsf", "2")
    mt_ok(tape, "rewi")
    assert tell(tape) == "At block 0."


@pytest.mark.parametrize("word", ["e", "re", "bs", "s"])
def test_ambiguous_prefix_is_exit_1(tape: str, word: str) -> None:
    result = pymt("-f", tape, word)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f'pymt: ambiguous command "{word}"'


def test_unknown_command_is_exit_1_with_usage(tape: str) -> None:
    result = pymt("-f", tape, "frob")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == 'pymt: unknown command "frob"'
    assert lines[1].startswith("usage: pymt ")
    assert "Traceback" not in result.stderr
    assert_layout_intact(tape)


def test_extra_argument_is_exit_1(tape: str) -> None:
    result = pymt("-f", tape, "rewind", "3")
    assert result.returncode == 1
    assert error_line(result) == "pymt: too many arguments for the command 'rewind'."


def test_driver_option_commands_are_refused(tape: str) -> None:
    result = pymt("-f", tape, "stoptions", "buffer-writes")
    assert result.returncode == 1
    assert error_line(result) == 'pymt: the mt-st command "stoptions" is not supported'


def test_help_and_version_exit_0() -> None:
    assert pymt("-h").returncode == 0
    assert "commands: weof" in pymt("-h").stdout
    assert pymt("--version").stdout.startswith("pymt (snapdump ")


# -- counts -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("+3", 3), (" 3", 3), ("0", 0), ("0x1f", 31), ("0X10", 16), ("010", 8),
    ("2k", 2048), ("1M", 1024**2), ("1G", 1024**3), ("0x2k", 2048), ("2147483647", 2**31 - 1),
])
def test_counts_parse_as_strtol_with_units(text: str, value: int) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize(("text", "status"), [
    ("abc", 3), ("", 3), ("-", 3), ("x1", 3), ("k", 3),  # not a number (mt-st would send 0)
    ("5x", 3), ("08", 3), ("5 ", 3), ("2K", 3), ("1kb", 3),  # bad unit
    ("2G", 3), ("2147483648", 3), ("0x80000000", 3),  # too large for a C int
    ("-1", 1), ("-0x10", 1), ("-1k", 1),  # negative
])
def test_bad_counts_exit_as_mt_st(text: str, status: int) -> None:
    with pytest.raises(CommandFailed) as info:
        parse_count(text)
    assert info.value.status == status


def test_mkpartition_alone_takes_negative_counts() -> None:
    assert parse_count("-1", negative_ok=find_command("mkpartition").negative_ok) == -1


def test_hex_count_reaches_the_drive(tape: str) -> None:
    mt_ok(tape, "fsf", "0x2")
    assert tell(tape) == "At block 7."


def test_negative_count_is_exit_1_and_moves_nothing(tape: str) -> None:
    mt_ok(tape, "fsf", "1")
    result = pymt("-f", tape, "fsf", "-1")
    assert result.returncode == 1
    assert error_line(result) == "pymt: negative repeat count"
    assert tell(tape) == "At block 4."


@pytest.mark.parametrize("count", ["abc", "1x", "3G"])
def test_bad_count_is_exit_3_and_moves_nothing(tape: str, count: str) -> None:
    result = pymt("-f", tape, "fsf", count)
    assert result.returncode == 3
    assert error_line(result).startswith("pymt: ")
    assert tell(tape) == "At block 0."
    assert_layout_intact(tape)


# -- the device ---------------------------------------------------------------------


def test_tape_variable_is_the_default_device(tape: str) -> None:
    result = pymt("fsf", env=checkout_env(TAPE=tape))
    assert result.returncode == 0, result.stderr
    assert tell(tape) == "At block 4."


def test_dash_f_wins_over_tape(tape: str, tmp_path) -> None:
    result = pymt("-f", tape, "tell", env=checkout_env(TAPE=str(tmp_path / "nowhere")))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "At block 0.\n"


def test_dash_t_is_dash_f(tape: str) -> None:
    assert pymt("-t", tape, "tell").stdout == "At block 0.\n"


def test_no_device_at_all_is_one_line_naming_f_and_tape() -> None:
    result = pymt("status")
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith("pymt: ") and "-f" in line and "TAPE" in line


def test_unknown_device_is_exit_1(shelf: Shelf) -> None:
    device = str(shelf.path / "nst9")
    result = pymt("-f", device, "status")
    assert result.returncode == 1
    assert error_line(result) == f"{device}: no such tape device"


def test_a_file_that_is_not_a_tape_device_is_exit_1(tape: str, shelf: Shelf) -> None:
    device = str(shelf.path / "shelf.json")
    result = pymt("-f", device, "rewind")
    assert result.returncode == 1
    assert error_line(result).startswith(f"{device}: not a tape device")
    assert_layout_intact(tape)


def test_busy_drive_is_exit_1_and_leaves_the_tape_alone(tape: str) -> None:
    mt_ok(tape, "fsf", "1")
    with drive_held(tape):
        for verb in ("status", "fsf", "weof"):
            result = pymt("-f", tape, verb)
            assert result.returncode == 1  # st's open gives EBUSY; mt-st exits 1
            line = error_line(result)
            assert line.startswith(f"{tape}: ") and "busy" in line
    assert tell(tape) == "At block 4."
    assert_layout_intact(tape)


@pytest.mark.parametrize("verb", ["weof", "eof", "erase"])
def test_writing_to_a_protected_cartridge_fails_at_open(tape: str, shelf: Shelf, verb: str) -> None:
    # st's open of a write-protected tape for writing is EROFS; mt-st's perror + exit 1.
    shelf.set_write_protect("TEST01", True)
    result = pymt("-f", tape, verb)
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(f"{tape}: ") and "write-protected" in line
    assert_layout_intact(tape)


@pytest.mark.parametrize(("verb", "count"), [("fsf", "1"), ("fsr", "1"), ("fsf", "5")])
def test_spacing_past_end_of_data_is_exit_2(tape: str, verb: str, count: str) -> None:
    mt_ok(tape, "eod")
    result = pymt("-f", tape, verb, count)
    assert result.returncode == 2
    line = error_line(result)
    assert line.startswith(f"{tape}: ") and "end of data" in line
    assert_layout_intact(tape)


def test_reading_past_end_of_data_in_another_process_fails_and_keeps_data(tape: str) -> None:
    mt_ok(tape, "eod")
    with pytest.raises(TapeError):
        with open_device(tape) as drive:
            drive.read(65536)
            drive.read(65536)  # st: at most one 0 at EOD, then EIO
    assert_layout_intact(tape)


def test_motion_on_an_ejected_cartridge_fails_with_one_line(tape: str) -> None:
    mt_ok(tape, "offline")
    result = pymt("-f", tape, "fsf")
    # st fails the blocking open with ENOMEDIUM (exit 1); a drive that opens
    # and then refuses the operation gives exit 2.  Either is mt-st's.
    assert result.returncode in (1, 2)
    assert error_line(result).startswith(f"{tape}: ")
    assert_layout_intact_after_load(tape)
