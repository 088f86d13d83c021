"""SSH hygiene: scp gets `--` and quoted remote paths inside the run folder only; a known_hosts path with spaces
stays one path; the device removes only the folder edgeopt made; a probe without JSON is one line; reports
never carry the user, host, port or key path."""

from __future__ import annotations

import shutil

import pytest

from edgeopt.bench.devices.ssh import DeviceLost, SSHDevice, _probe_json
from edgeopt.bench.targets import Connection
from edgeopt.errors import UsageError
from tests.e2e.sshd_fixture import sshd  # noqa: F401 — the fixture is used by name


def _dev(**kw) -> SSHDevice:
    return SSHDevice("pi", Connection(kind="ssh", host="board.lan", user="alice", port=2222, **kw))


@pytest.mark.parametrize("stdout", ["", "\n\n", "Welcome to the board!\n", "[1, 2]", '{"no": "modules"}',
                                    '{"modules": [1]'])
def test_probe_without_json_is_none(stdout):
    assert _probe_json(stdout) is None


def test_probe_json_takes_the_last_line():
    assert _probe_json('banner\n{"modules": {"numpy": "2.0"}}\n') == {"modules": {"numpy": "2.0"}}


def test_scp_paths_are_quoted_after_dashdash_and_inside_the_run_folder(tmp_path, monkeypatch):
    dev = _dev(known_hosts_file=str(tmp_path / "my keys" / "known hosts"))
    seen = []
    monkeypatch.setattr(dev, "_call", lambda argv, *a, **k: seen.append(argv) or type("F", (), {"returncode": 0})())
    dev.remote_dir = "/tmp/edgeopt.AbCd1234"
    dev.put([tmp_path / "a b.json"], dev.remote_dir)
    dev.get([f"{dev.remote_dir}/out-0/result.json"], tmp_path)
    for argv in seen:
        assert "--" in argv and argv.index("--") < len(argv) - 2
        assert f'UserKnownHostsFile="{tmp_path / "my keys" / "known hosts"}"' in argv
    assert seen[0][-1] == "alice@board.lan:/tmp/edgeopt.AbCd1234/"
    for bad in ["/etc/passwd", "/tmp/edgeopt.AbCd1234/../../etc", "/tmp/edgeopt.AbCd12345"]:
        with pytest.raises(DeviceLost, match="not inside the run folder"):
            dev.get([bad], tmp_path)


@pytest.mark.parametrize("printed", ["/home/alice", "/", "/tmp/edgeopt.short", "/tmp/../edgeopt.AbCd1234",
                                     "rm -rf ~", "/tmp/x/edgeopt.AbCd1234 /home"])
def test_only_a_folder_edgeopt_made_is_accepted_and_removed(tmp_path, monkeypatch, printed):
    dev = _dev()
    calls = []

    def fake_ssh(command, *a, **k):
        calls.append(command)
        return type("F", (), {"returncode": 0, "stdout": printed + "\n", "stderr": ""})()

    monkeypatch.setattr(dev, "ssh", fake_ssh)
    with pytest.raises(DeviceLost, match="not an edgeopt.XXXXXXXX path"):
        dev.open(tmp_path / "inputs.npz")
    dev.close()
    assert dev.remote_dir is None and not any(c.startswith("rm") for c in calls)


def test_remote_tmp_with_shell_characters_is_refused(tmp_path):
    with pytest.raises(UsageError, match="remote_tmp"):
        _dev(remote_tmp="/tmp/$(reboot)").open(tmp_path / "inputs.npz")


def test_errors_in_results_name_the_target_not_the_connection(tmp_path):
    dev = _dev(identity_file=str(tmp_path / "id_ed25519"), known_hosts_file=str(tmp_path / "kh"))
    text = (f"ssh to alice@board.lan:2222 failed: Permission denied (publickey) for alice with "
            f"{tmp_path / 'id_ed25519'}; ssh-keyscan -p 2222 board.lan >> {tmp_path / 'kh'}")
    clean = dev.scrub(text)
    for secret in ("alice", "board.lan", "2222", str(tmp_path)):
        assert secret not in clean, clean
    assert "target pi" in clean


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sshd") is None and not shutil.os.path.exists("/usr/sbin/sshd"),
                    reason="openssh-server is not installed (.ci/setup-system.sh installs it)")
def test_real_device_with_spaces_in_known_hosts_and_no_probe_json(sshd, compressed, digits, tmp_path):  # noqa: F811
    import json

    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    out, manifest = compressed
    art = [out / a.path for a in manifest.artifacts if a.format == "tflite"][:1]
    spaced = tmp_path / "with space" / "known hosts"
    spaced.parent.mkdir()
    shutil.copy(sshd.known_hosts, spaced)
    target = load_target(sshd.target_file(tmp_path / "t.yaml", known_hosts_file=str(spaced)))
    report = benchmark(art, [target], digits, tmp_path / "r.json")
    assert report.results[0].status == "ok", report.results[0].error
    text = (tmp_path / "r.json").read_text()
    for secret in (sshd.user + "@", str(sshd.port), str(sshd.identity), str(spaced)):
        assert secret not in json.dumps(json.loads(text)["results"])
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\necho 'Welcome!'\n")
    silent.chmod(0o755)
    target = load_target(sshd.target_file(tmp_path / "s.yaml", known_hosts_file=str(spaced), python=str(silent)))
    with pytest.raises(UsageError, match=r"device probe returned no JSON \(first line: 'Welcome!'\)"):
        benchmark(art, [target], digits)
