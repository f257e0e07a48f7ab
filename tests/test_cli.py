import subprocess
import sys

import pytest

from kgpt2.cli import main


def test_presets_lists_all_seven(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in [
        "gpt2_base_en", "gpt2_medium_en", "gpt2_large_en", "gpt2_extra_large_en",
        "gpt2_base_en_cnn_dailymail", "gpt2_tiny_random", "gpt2_base_random",
    ]:
        assert name in out
    assert "124,439,808" in out
    # The built-in 124M preset shows its real float32 size, not 0.0.
    (base_random,) = [line for line in out.splitlines() if "gpt2_base_random" in line]
    assert "124,439,808" in base_random and "474.7" in base_random


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "presets" in out and "demo" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: kgpt2" in capsys.readouterr().out


def test_demo_bad_preset_is_a_clear_error(capsys):
    assert main(["demo", "--preset", "gpt3_huge", "--steps", "1"]) == 1
    assert "Unknown preset 'gpt3_huge'" in capsys.readouterr().err


def test_console_script_runs_without_tensorflow():
    # `kgpt2 presets` lists names offline: it must not pay for importing
    # Keras, TensorFlow or JAX.
    code = ("import sys; from kgpt2.cli import main; status = main(['presets']); "
            "heavy = {'keras', 'tensorflow', 'jax', 'keras_hub'} & set(sys.modules); "
            "print('heavy:', sorted(heavy)); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "gpt2_tiny_random" in result.stdout
    assert "heavy: []" in result.stdout


def test_demo_leaves_a_folder_it_did_not_write_alone(tmp_path):
    import kgpt2
    from kgpt2.demo import prepare_run_dir

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(kgpt2.Error, match="kgpt2 did not write it"):
        prepare_run_dir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_demo_replaces_only_the_files_an_earlier_demo_wrote(tmp_path):
    import kgpt2
    from kgpt2.atomic import write_manifest
    from kgpt2.demo import DEMO_MARKER
    from kgpt2.demo import prepare_run_dir

    run_dir = prepare_run_dir(tmp_path / "demo")
    (run_dir / "run").mkdir()
    (run_dir / "run" / "samples.txt").write_text("the demo's")
    write_manifest(run_dir)  # as the demo does when it ends
    (run_dir / "run" / "NOTES.md").write_text("mine")
    with pytest.raises(kgpt2.Error, match=r"1 file\(s\) kgpt2 did not write \(run/NOTES.md\)"):
        prepare_run_dir(run_dir)
    assert (run_dir / "run" / "NOTES.md").read_text() == "mine"
    assert (run_dir / "run" / "samples.txt").read_text() == "the demo's"
    (run_dir / "run" / "NOTES.md").unlink()
    prepare_run_dir(run_dir)
    assert not (run_dir / "run").exists()
    assert (run_dir / DEMO_MARKER).is_file()
    # A folder from before manifests, a marker among other files, is not proof.
    old = tmp_path / "old_demo"
    old.mkdir()
    (old / DEMO_MARKER).write_text("")
    (old / "mine.txt").write_text("mine")
    with pytest.raises(kgpt2.Error, match="kgpt2 did not write it"):
        prepare_run_dir(old)
    assert (old / "mine.txt").read_text() == "mine"


def test_poem_form_share_counts_complete_lines_of_five_or_seven():
    from kgpt2.demo import line_lengths
    from kgpt2.demo import poem_form_share

    quatrain = "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。"
    assert line_lengths(quatrain) == [5, 5, 5, 5]
    assert poem_form_share([quatrain, "朝辞白帝彩云间，千里江陵一日还。"]) == 1.0
    # The demo's output before its model learned the form: short and empty lines.
    assert poem_form_share(["春眠不觉晓。。晴缱。晼陌鱟"]) == 1 / 3
    # An unfinished last line is not counted; no finished line at all gives 0.
    assert line_lengths("床前明月光，疑是地") == [5]
    assert poem_form_share(["春眠不觉晓瘻颌"]) == 0.0
