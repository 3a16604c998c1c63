#!/usr/bin/env python3
"""gen_man.py GPTQ VERSION OUT: write the man page gptq(1) from the built
program's own help: `gptq --help` for the command list, `gptq CMD --help`
for each command's section, so the page says exactly what --help says.

Run by meson at build time (meson.build: the gptq.1 target); the standard
library only. The help text is set verbatim (.nf) with roff's special
characters escaped.
"""
import re
import subprocess
import sys


def run_help(exe, *args):
    r = subprocess.run([exe, *args, "--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit(f"gen_man.py: `{exe} {' '.join(args)} --help` exited {r.returncode}: {r.stderr}")
    return r.stdout


def roff(text):
    """Verbatim text: escape backslashes, and a line starting with '.' or
    "'" (a roff request) gets a zero-width escape in front."""
    out = []
    for line in text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: gen_man.py GPTQ VERSION OUT")
    exe, version, out = sys.argv[1:]
    top = run_help(exe)
    cmds = []
    in_cmds = False
    for line in top.split("\n"):
        if line.strip() == "commands:":
            in_cmds = True
            continue
        m = re.match(r"^  (\S+)\s+(.*)$", line)
        if in_cmds and m:
            cmds.append((m.group(1), m.group(2)))
        elif in_cmds and line.strip() == "":
            in_cmds = False
    if not cmds:
        sys.exit("gen_man.py: no commands found in `gptq --help`:\n" + top)

    page = [
        f'.TH GPTQ 1 "" "gptq-c {version}" "User Commands"',
        ".SH NAME",
        "gptq \\- GPTQ post-training quantization of language models",
        ".SH SYNOPSIS",
        ".B gptq",
        ".I command",
        "[\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        "gptq quantizes the linear layers of a Hugging Face model folder with GPTQ",
        "(Frantar et al., ICLR 2023) into a checkpoint that transformers, vLLM and",
        "GPTQModel load, evaluates perplexity, and runs the reference per-layer",
        "operations kernel developers diff against. This page is generated from the",
        "program's own \\fB\\-\\-help\\fR output.",
        ".SH COMMANDS",
    ]
    for name, summary in cmds:
        page += [".TP", f"\\fB{name}\\fR", roff(summary)]
    for name, _ in cmds:
        page += [f".SH GPTQ {name.upper()}", ".nf", roff(run_help(exe, name)), ".fi"]
    page += [
        ".SH EXIT STATUS",
        "0 on success, 1 on bad input or a failure (the message names the file and",
        "the problem), 2 on a bad command line, 128 + N when signal N ended the run.",
        ".SH SEE ALSO",
        "The README of gptq-c; the library's header gptq.h.",
    ]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(page) + "\n")


if __name__ == "__main__":
    main()
