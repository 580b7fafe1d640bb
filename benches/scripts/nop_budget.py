#!/usr/bin/env python3
"""Instructions per NOP, by where they go (docs/benchmarks.md, "NOP budget").

    cargo build --release -p ringio-bench --example nop_callgrind
    benches/scripts/nop_budget.py [--batch 32] [--ops 51200] [--detail CATEGORY]
                                  [--binary target/release/examples/nop_callgrind]

Runs the `nop_callgrind` harness under `valgrind --tool=callgrind
--dump-instr=yes`, collecting only inside its measured function (the
warm-up is outside), then attributes every executed instruction to a
category: each instruction's inline chain (`llvm-addr2line -i`) is walked
innermost first, and the first frame that a rule below names decides.
Source lines that touch `stats.` or store the callback count as such.
Needs valgrind and llvm-addr2line (or addr2line with -i, slower).
`--detail CATEGORY` also lists the source lines of one category.
"""

import argparse
import collections
import os
import re
import subprocess
import sys

# (category, regular expression on the frame's function), first match wins.
RULES = [
    ("tracing", r"tracing|LevelFilter|IO<C>::trace_complete$"),
    ("FIFO push/pop (completed)", r"fifo::Fifo::(push|pop|peek)|spill_straight"),
    ("slot free", r"Slots<C>::(free|free_detaching|free_completed|free_plain|release|push_free)"),
    ("callback call", r"callback::invoke|callback::call_once|callback::table|Detached<C>::call"
     r"|Callback<C>::(detach|call)"
     r"|ops::Done|unit_result|ringio_round::\{\{closure\}\}"),
    ("handler store", r"Callback<C>::(new|inline|inline_with|empty|store|store_inline)"
     r"|IO<C>::(callback|handler)$|as ringio::callback::Store<C>>::store_into"),
    ("slot alloc", r"Slots<C>::(alloc|alloc_on|take_free|grow|grow_for_alloc)"),
    ("SQE fill and push", r"io_uring::entry_for|io_uring::build_entry|IoUringBackend::push_direct"
     r"|IoUringBackend as ringio::backend::Backend>::push"
     r"|push_entry|io_uring::squeue|io_uring::opcode|SubmissionRing::(push|refresh_limit|publish)"),
    ("dispatch (AnyBackend)", r"AnyBackend as ringio::backend::Backend"),
    ("reap: CQ read", r"IoUringBackend as ringio::backend::Backend>::reap|io_uring::cqueue|CqCursor|CompletionRing|ring_map::read_run"
     r"|extend_desugared|SpecExtend"),
    ("io_uring_enter (user side)", r"submit_and_wait|Submitter|needs_enter|syscall|SubmissionRing::enter"),
    ("completion: generation and state checks, result",
     r"complete_plain|settle_plain|is_plain_success|on_raw_completion|IO<C>::complete$|complete_settle|IO<C>::finish$"),
    ("submit: state, checks, enqueue",
     r"IO<C>::(start|push_now|enqueue|submit_with|submit|submit_started|submit_with_handle|push_to_backend"
     r"|settle_before_push|handle_closed)$|ops::<impl ringio::io::IO<C>>::nop"),
    ("run loop (straight run or peek and pop, state check, sim check, bookkeeping)",
     r"IO<C>::(run_completed|run_callback)$"),
    ("reap loop", r"IO<C>::(reap|reap_in_place|reap_batched|on_raw_completion)$"),
    ("loop call (guard, pass, timers)",
     r"Running|IO<C>::(guarded|run|pass|fire_timers|wait_until_next_timer|tick)$|Timers"),
    ("benchmark harness", r"nop_callgrind::"),
]


def parse_callgrind(path):
    """Self cost per (object, function, address)."""
    counts = collections.Counter()
    names, objects = {}, {}
    function, obj, address, skip = "", "", 0, False
    for line in open(path):
        line = line.rstrip("\n")
        m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            if m.group(3):
                objects[m.group(2)] = m.group(3)
            if m.group(1) == "ob":
                obj = objects[m.group(2)]
            continue
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1) == "fn":
                function = names[m.group(2)]
            continue
        if line.startswith("calls="):
            skip = True  # the next cost line is a call's inclusive cost
            continue
        m = re.match(r"^(0x[0-9a-f]+|\+\d+|-\d+|\*)\s+(\S+)\s+(\d+)", line)
        if m:
            a = m.group(1)
            if a.startswith("0x"):
                address = int(a, 16)
            elif a[0] == "+":
                address += int(a[1:])
            elif a[0] == "-":
                address -= int(a[1:])
            if skip:
                skip = False
                continue
            counts[(obj, function, address)] += int(m.group(3))
    return counts


def demangle(name):
    name = re.sub(r"::h[0-9a-f]{16}", "", name)
    name = re.sub(r" \(\.llvm\.\d+\)", "", name)
    for a, b in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$u7b$", "{"), ("$u7d$", "}"),
                 ("$C$", ","), ("$u5b$", "["), ("$u5d$", "]"), ("$BP$", "*"), ("$RF$", "&"),
                 ("..", "::")]:
        name = name.replace(a, b)
    return name.lstrip("_")


SOURCES = {}


def source_line(location):
    m = re.match(r"^(/[^:]+):(\d+)", location)
    if not m:
        return ""
    path = m.group(1)
    if path not in SOURCES:
        try:
            SOURCES[path] = open(path).read().split("\n")
        except OSError:
            SOURCES[path] = []
    n = int(m.group(2))
    lines = SOURCES[path]
    return lines[n - 1] if 0 < n <= len(lines) else ""


def inline_chains(binary, addresses):
    """Address (in the file) -> [(function, file:line)], innermost first."""
    tool = "llvm-addr2line" if subprocess.run(["which", "llvm-addr2line"],
                                              capture_output=True).returncode == 0 else "addr2line"
    out = subprocess.run([tool, "-a", "-f", "-i", "-C", "-e", binary]
                         + ["0x%x" % a for a in addresses],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    chains, current, i = {}, None, 0
    while i < len(out):
        line = out[i]
        if line.startswith("0x"):
            current = int(line, 16)
            chains[current] = []
            i += 1
        elif current is not None and line and i + 1 < len(out):
            chains[current].append((demangle(line), out[i + 1]))
            i += 2
        else:
            i += 1
    return chains


def categorize(chain):
    for function, location in chain:
        text = source_line(location)
        if "stats." in text:
            return "stats", location
        if "slot.callback = callback" in text:
            return "handler store", location
        for name, pattern in RULES:
            if re.search(pattern, function):
                return name, location
    return "other", chain[0][1] if chain else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ops", type=int, default=51200)
    parser.add_argument("--binary", default="target/release/examples/nop_callgrind")
    parser.add_argument("--detail", help="list the source lines of this category")
    # Under target/, which git ignores: not a stray file in the checkout.
    parser.add_argument("--out", default="target/callgrind.nop_budget.out")
    args = parser.parse_args()

    subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes", "--collect-atstart=no",
                    "--toggle-collect=*measured*", "--callgrind-out-file=" + args.out,
                    args.binary, "ringio", str(args.batch), str(args.ops)],
                   check=True, capture_output=True)
    counts = parse_callgrind(args.out)
    binary = os.path.basename(args.binary)
    mine = {k: v for k, v in counts.items() if k[0].endswith(binary)}
    others = sum(v for k, v in counts.items() if k not in mine)

    # The load bias: where `measured_ringio` ran against its address in the file.
    symbols = subprocess.run(["nm", "-C", args.binary], capture_output=True, text=True).stdout
    entry = next(int(line.split()[0], 16) for line in symbols.split("\n")
                 if line.endswith(" nop_callgrind::measured_ringio"))
    bias = min(a for (_, f, a) in mine if f == "nop_callgrind::measured_ringio") - entry
    chains = inline_chains(args.binary, sorted(set(a - bias for (_, _, a) in mine)))

    budget, detail = collections.Counter(), collections.Counter()
    for (_, _, address), count in mine.items():
        name, location = categorize(chains.get(address - bias, []))
        budget[name] += count
        if name == args.detail:
            key = "%s  %s" % (location.split(" ")[0], source_line(location).strip()[:72])
            detail[key] += count

    ops = float(args.ops)
    print("instructions per NOP, batch %d (%d NOPs)" % (args.batch, args.ops))
    for name, _ in RULES + [("stats", None), ("other", None)]:
        if budget[name]:
            print("%7.1f  %s" % (budget[name] / ops, name))
    if others:
        print("%7.1f  libc and the rest" % (others / ops))
    print("%7.1f  total" % ((sum(budget.values()) + others) / ops))
    for line, count in detail.most_common():
        print("   %6.1f  %s" % (count / ops, line))


if __name__ == "__main__":
    sys.exit(main())
