"""Run the BIG-IP iRules under a plain `tclsh`, with small stand-ins for the TMOS commands they use.

The stand-ins keep BIG-IP's documented semantics where the iRule depends on them: `connect` returns "" on
failure and takes "IPv4:port" or "IPv6.port"; `send`/`recv` report `-status`; `recv N` returns what arrived
by the timeout or the peer's close; `table` is a shared key/value store; `active_members -list` yields
{addr port} pairs; `HTTP::header`, `HTTP::collect`, `HTTP::payload` and `HTTP::release` serve one client
request (headers and body bytes, HTTP_REQUEST_DATA fired after a collect); `sha1` returns the raw digest, as
BIG-IP's does (tcllib's sha1 computes it). The sideband commands use real TCP sockets, so a test can put a real
scheduler API behind them. Everything the rule does is recorded and returned as `IRuleRun`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ROOT / "deploy" / "f5" / "irule_llm.tcl"
MULTI = ROOT / "deploy" / "f5" / "irule_llm_multi.tcl"
TCLSH = shutil.which("tclsh")


def _has_tcllib() -> bool:
    """tcllib provides the sha1 that stands in for BIG-IP's."""
    if TCLSH is None:
        return False
    probe = subprocess.run([TCLSH], input="puts [package require sha1]\n", capture_output=True, text=True, timeout=30)
    return probe.stdout.strip() != ""


needs_tclsh = pytest.mark.skipif(
    not _has_tcllib(), reason="tclsh or tcllib is not installed (apt-get install tcl tcllib to run these)"
)

STANDINS = r"""
set ::events [dict create]
proc when {event args} { dict set ::events $event [lindex $args end] }
# Events run at global level: like iRule variables, what one event sets is seen by the next on the connection.
proc fire {event} { uplevel #0 [dict get $::events $event] }
# `call /Common/irule_llm::name args` -> the proc `name` (namespace tail).
proc call {name args} { uplevel 1 [list [namespace tail $name] {*}$args] }
# One line per event: the kind, then each field hex-encoded (fields may hold CR/LF, braces, anything).
proc record {kind args} {
    set fields [list $kind]
    foreach arg $args { lappend fields [binary encode hex [encoding convertto utf-8 $arg]] }
    puts stdout [join $fields "\t"]
    flush stdout
}
proc virtual {what} { return "/Common/vs_llm" }
proc log {facility message} { record LOG $facility $message }
set ::table [dict create]
proc table {op args} {
    set args [lsearch -all -inline -not -exact $args -notouch]
    switch -- $op {
        lookup { if {[dict exists $::table [lindex $args 0]]} { return [dict get $::table [lindex $args 0]] } ; return "" }
        set { dict set ::table [lindex $args 0] [lindex $args 1] ; record TABLE [lindex $args 0] [lindex $args 1] }
        default { error "table $op: not emulated" }
    }
}
proc active_members {args} {
    set pool [lindex $args end]
    set members [expr {[dict exists $::active $pool] ? [dict get $::active $pool] : {}}]
    if {[lindex $args 0] eq "-list"} { return $members }
    return [llength $members]
}
proc pool {args} { record POOL {*}$args }
proc options {argv} {
    # Split "-opt value ... rest" into a dict of options and the remaining words.
    set opts [dict create]
    while {[string match -* [lindex $argv 0]]} {
        set opt [lindex $argv 0]
        if {$opt in {-eol -peek}} { dict set opts $opt 1 ; set argv [lrange $argv 1 end] ; continue }
        dict set opts $opt [lindex $argv 1]
        set argv [lrange $argv 2 end]
    }
    return [list $opts $argv]
}
rename close _tcl_close
proc connect {args} {
    lassign [options $args] opts rest
    set dest [lindex $rest 0]
    if {[dict exists $opts -status]} { upvar 1 [dict get $opts -status] status }
    record CONNECT $dest
    # BIG-IP syntax: "IPv4:port" or "IPv6.port".
    if {[string first ":" $dest] != [string last ":" $dest]} {
        set sep [string last "." $dest]
    } else {
        set sep [string last ":" $dest]
    }
    if {[catch {socket [string range $dest 0 [expr {$sep - 1}]] [string range $dest [expr {$sep + 1}] end]} sock]} {
        set status failed
        return ""
    }
    fconfigure $sock -translation binary -blocking 0
    set status connected
    record OPENED $sock
    return $sock
}
proc send {args} {
    lassign [options $args] opts rest
    lassign $rest conn data
    if {[dict exists $opts -status]} { upvar 1 [dict get $opts -status] status }
    fconfigure $conn -blocking 1
    puts -nonewline $conn $data
    flush $conn
    fconfigure $conn -blocking 0
    record SENT $data
    set status sent
    return [string length $data]
}
proc recv {args} {
    lassign [options $args] opts rest
    lassign $rest count conn
    if {[dict exists $opts -status]} { upvar 1 [dict get $opts -status] status }
    set timeout [expr {[dict exists $opts -timeout] ? [dict get $opts -timeout] : 0}]
    set deadline [expr {[clock milliseconds] + $timeout}]
    set data ""
    set status timeout
    while {1} {
        append data [read $conn [expr {$count - [string length $data]}]]
        if {[string length $data] >= $count} { set status received ; break }
        if {[eof $conn]} { set status closed ; break }
        if {[clock milliseconds] >= $deadline} { break }
        after 5
    }
    record RECV $status [string length $data]
    return $data
}
proc close {conn} { record CLOSED $conn ; _tcl_close $conn }
# The client's request: headers (lower-case names) and body bytes; HTTP::collect records what it asked for, and
# `deliver` then fires HTTP_REQUEST_DATA with the body collected so far. Like BIG-IP, it may hold more than was
# asked for (up to 4 KB more), so the rule must apply its own cap.
set ::client_headers [dict create]
set ::client_body ""
namespace eval HTTP {}
proc HTTP::header {args} {
    if {[lindex $args 0] eq "exists"} { return [dict exists $::client_headers [string tolower [lindex $args 1]]] }
    set name [string tolower [lindex $args 0]]
    if {[dict exists $::client_headers $name]} { return [dict get $::client_headers $name] }
    return ""
}
proc HTTP::collect {args} {
    record COLLECT {*}$args
    if {[info exists ::collect_error]} { error $::collect_error }
    set ::collect_pending [lindex $args 0]
}
proc HTTP::payload {args} {
    if {[llength $args]} { error "HTTP::payload $args: not emulated" }
    return $::collected
}
proc HTTP::release {} { record RELEASE }
proc deliver {} {
    if {![info exists ::collect_pending]} { return }
    set ::collected [string range $::client_body 0 [expr {$::collect_pending + 4095}]]
    unset ::collect_pending
    record DATA [string length $::collected]
    fire HTTP_REQUEST_DATA
}
package require sha1
# BIG-IP's sha1: the 20 raw digest bytes of the string's bytes (tcllib's sha1 needs -bin for raw bytes).
proc sha1 {data} { return [::sha1::sha1 -bin -- $data] }
"""


@dataclass
class IRuleRun:
    """What one tclsh run of an iRule did, in order."""

    events: list[list[str]] = field(default_factory=list)
    stdout: str = ""

    def of(self, kind: str) -> list[list[str]]:
        return [e[1:] for e in self.events if e[0] == kind]

    @property
    def pools(self) -> list[list[str]]:
        return self.of("POOL")

    @property
    def connects(self) -> list[str]:
        return [e[0] for e in self.of("CONNECT")]

    @property
    def sent(self) -> list[str]:
        return [e[0] for e in self.of("SENT")]

    def unclosed(self) -> set[str]:
        return {e[0] for e in self.of("OPENED")} - {e[0] for e in self.of("CLOSED")}


def with_variables(path: Path, **values: object) -> str:
    """The iRule text with `set <name> <default>` lines of its HTTP_REQUEST event set to `values`."""
    text = path.read_text(encoding="utf-8")
    for name, value in values.items():
        pattern = re.compile(rf"^(\s*set {name} )(\"[^\"]*\"|\S+)", re.MULTILINE)
        text, count = pattern.subn(lambda m, value=value: m.group(1) + f'"{value}"', text)
        assert count == 1, f"{path.name}: expected one `set {name} ...` line, found {count}"
    return text


def tcl_list(items: list[str]) -> str:
    return " ".join("{" + item + "}" for item in items)


def run_irule(
    rule_text: str,
    active: dict[str, list[tuple[str, int]]],
    fires: int = 1,
    tmp_path: Path | None = None,
    extra: str = "",
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> IRuleRun:
    """Fire HTTP_REQUEST `fires` times in one tclsh process (the session table persists between fires).

    Every fire is the same client request: `headers` and `body` (bytes). When the rule collects the body,
    HTTP_REQUEST_DATA fires right after HTTP_REQUEST."""
    assert TCLSH is not None
    rule = (tmp_path or Path("/tmp")) / "irule_under_test.tcl"
    rule.write_text(rule_text, encoding="utf-8")
    active_dict = " ".join(
        f"{{{pool}}} {{{tcl_list([f'{a} {p}' for a, p in members])}}}" for pool, members in active.items()
    )
    header_dict = " ".join(f"{{{k.lower()}}} {{{v}}}" for k, v in (headers or {}).items())
    script = (
        STANDINS
        + f"\nset ::active [dict create {active_dict}]\nset ::client_headers [dict create {header_dict}]\n"
        + f"set ::client_body [binary decode hex {{{body.hex()}}}]\nsource {{{rule}}}\n{extra}\n"
        + "\n".join("record FIRE\nfire HTTP_REQUEST\ndeliver" for _ in range(fires))
        + "\n"
    )
    proc = _tclsh(script, rule.with_suffix(".run.tcl"), timeout)
    assert proc.returncode == 0, f"tclsh failed: {proc.stderr}"
    return IRuleRun(events=[_event(line) for line in proc.stdout.splitlines() if line], stdout=proc.stdout)


def call_procs(rule_path: Path, calls: list[tuple[str, ...]]) -> list[str]:
    """Source the rule (events only recorded, not fired) and return each `proc arg...` call's result.

    Arguments travel hex-encoded, so CR/LF, braces and quotes reach the proc exactly as given.
    """
    assert TCLSH is not None
    lines = []
    for name, *args in calls:
        words = " ".join(f"[encoding convertfrom utf-8 [binary decode hex {{{a.encode().hex()}}}]]" for a in args)
        lines.append(f"record RESULT [{name} {words}]")
    full = STANDINS + f"\nset ::active [dict create]\nsource {{{rule_path}}}\n" + "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        proc = _tclsh(full, Path(tmp) / "calls.tcl", 30)
    assert proc.returncode == 0, f"tclsh failed: {proc.stderr}"
    return [e[1] for e in map(_event, proc.stdout.splitlines()) if e[0] == "RESULT"]


def _tclsh(script: str, path: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run `script` as a file: tclsh reading a script from stdin prints an error and goes on (exit status 0),
    which would hide a Tcl error in the rule; from a file, an error stops it with status 1."""
    path.write_text(script, encoding="utf-8")
    return subprocess.run([TCLSH, str(path)], capture_output=True, text=True, timeout=timeout)


def _event(line: str) -> list[str]:
    kind, *fields = line.split("\t")
    return [kind, *(bytes.fromhex(f).decode("utf-8") for f in fields)]
