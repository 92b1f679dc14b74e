"""The README's two commands are the ones CI and users run; keep them in step with .ci/run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    return open(os.path.join(ROOT, "README.md")).read()


def test_ci_runs_the_readme_test_command_verbatim():
    ci = open(os.path.join(ROOT, ".ci", "run")).read().strip().splitlines()[-1]
    assert ci in _readme(), f".ci/run's command {ci!r} is not the README's test command"


def test_readme_main_job_command_uses_the_setup_script():
    assert re.search(r"^bash scripts/setup\.sh && \.venv/bin/tea-verl demo$", _readme(), re.M)


def test_cli_config_dir_points_at_the_hydra_config():
    out = subprocess.run([sys.executable, "-m", "tea_verl.cli", "config-dir"], capture_output=True, text=True, check=True)
    assert os.path.isfile(os.path.join(out.stdout.strip(), "tea_trainer.yaml"))


def test_ci_runs_the_readme_main_job_command_verbatim_too():
    ci = [line.strip() for line in open(os.path.join(ROOT, ".ci", "run"))]
    main_job = re.search(r"^(bash scripts/setup\.sh && \.venv/bin/tea-verl demo)$", _readme(), re.M).group(1)
    assert main_job in ci, "the README's main-job command must run in .ci/run on the fresh clone"


def _text_files():
    for top in ("README.md", "docs", "recipes", "tea_verl", "benchmarks", "tests", "scripts", "patches"):
        path = os.path.join(ROOT, top)
        if os.path.isfile(path):
            yield path
            continue
        for dirpath, _, names in os.walk(path):
            if "__pycache__" in dirpath:
                continue
            for n in names:
                if n.endswith((".md", ".py", ".yaml", ".sh")):
                    yield os.path.join(dirpath, n)


PATH_MENTION = re.compile(r"(?<![\w/.~$-])((?:docs|recipes|tea_verl|benchmarks|tests|scripts|patches)/[\w./-]*\w\.(?:md|py|yaml|sh|png|jsonl\.gz|json))")
MD_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_cited_file_exists():
    missing = []
    for f in _text_files():
        text = open(f, encoding="utf-8").read()
        base = os.path.dirname(f)
        for m in PATH_MENTION.finditer(text):
            if "*" in m.group(1) or "{" in m.group(1):
                continue
            if not os.path.exists(os.path.join(ROOT, m.group(1))):
                missing.append(f"{os.path.relpath(f, ROOT)}: {m.group(1)}")
        if f.endswith(".md"):
            for m in MD_LINK.finditer(text):
                target = m.group(1)
                if "://" in target or target.startswith("mailto:"):
                    continue
                if not os.path.exists(os.path.normpath(os.path.join(base, target))):
                    missing.append(f"{os.path.relpath(f, ROOT)}: link {target}")
    assert not missing, "files cited but absent from the repository:\n" + "\n".join(missing)


def test_the_readme_stays_a_front_page():
    """At most 200 lines: the details live in docs/ and CONTRIBUTING.md, which it links."""
    lines = _readme().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move details to docs/ (the limit is 200)"
