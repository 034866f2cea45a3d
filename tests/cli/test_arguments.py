"""The tools' one ``key=value`` command-line style and console-script wrapper (in process, no checkpoint needed)."""
import pytest

from attnlab.cli import average, predict, report, translate
from attnlab.cli.arguments import USAGE_ERROR, parse_key_values, positive_int, run_main, unquote

KEYS = ("ckpt_path", "text", "device")


def test_values_are_literal_and_whole_value_quotes_are_stripped():
    assert unquote('"a, b"') == unquote("'a, b'") == "a, b"
    assert unquote("he's") == "he's" and unquote('"') == '"' and unquote("'a\"") == "'a\""
    args = parse_key_values(["ckpt_path=a=b.ckpt", 'text="x = 1, y"'], KEYS)
    assert args == {"ckpt_path": "a=b.ckpt", "text": "x = 1, y"}


def test_defaults_required_and_repeatable_keys():
    args = parse_key_values(["text=one", "ckpt_path=c", "text='two'"], KEYS, {"device": "cpu"}, ["ckpt_path"], ["text"])
    assert args == {"ckpt_path": "c", "text": ["one", "two"], "device": "cpu"}
    assert parse_key_values(["ckpt_path=c"], KEYS, repeatable=["text"]) == {"ckpt_path": "c", "text": []}
    assert parse_key_values(["device=cuda"], KEYS, {"device": "cpu"}) == {"device": "cuda"}
    with pytest.raises(ValueError, match=r"^missing ckpt_path, text$"):
        parse_key_values(["device=cpu"], KEYS, required=["ckpt_path", "text"], repeatable=["text"])
    with pytest.raises(ValueError, match=r"ckpt_path= given twice \(again as 'ckpt_path=b'\); only text may repeat"):
        parse_key_values(["ckpt_path=a", "ckpt_path=b"], KEYS, repeatable=["text"])


@pytest.mark.parametrize("argument", ["txt=hi", "ckpt_path", "--device=cpu"])
def test_a_bad_argument_is_named_with_the_allowed_keys(argument):
    with pytest.raises(ValueError, match=rf"unexpected argument '{argument}'; allowed keys: ckpt_path, text, device$"):
        parse_key_values([argument], KEYS)


def test_positionals_are_the_other_arguments_in_order_paths_with_equals_signs_too():
    args = parse_key_values(["runs/seed=1", "metric=val/loss", "runs/b", "maximize=val/x"], ("metric", "maximize"),
                            repeatable=["maximize"], positional="dirs")
    assert args == {"dirs": ["runs/seed=1", "runs/b"], "metric": "val/loss", "maximize": ["val/x"]}
    assert parse_key_values([], ("metric",), positional="dirs") == {"dirs": []}


def test_average_and_report_speak_the_same_style(tmp_path, capsys):
    with pytest.raises(SystemExit, match="^attnlab-average: give checkpoint paths or dir=, not both\nusage"):
        average.main(["output=o.ckpt", "dir=d", "a.ckpt"])
    with pytest.raises(SystemExit, match="^attnlab-average: last must be a positive int, got '0'"):
        average.main(["output=o.ckpt", f"dir={tmp_path}", "last=0"])
    with pytest.raises(SystemExit, match="^attnlab-report: give at least one DIR\nusage: attnlab-report DIR"):
        report.main(["metric=val/loss"])
    with pytest.raises(SystemExit, match=f"^attnlab-report: .*{tmp_path / 'none'}"):
        report.main([str(tmp_path / "none"), "metric=val/loss"])
    report.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: attnlab-report DIR [DIR ...] [metric=NAME ...] [baseline=")


def test_a_spec_naming_keys_it_does_not_allow_is_refused():
    with pytest.raises(ValueError, match=r"among \['ckpt_path', 'text', 'device'\], got \['batch'\]"):
        parse_key_values([], KEYS, required=["batch"])


def test_positive_int():
    assert positive_int("batch_size", "8") == 8
    for bad in ("0", "-1", "2.5", "many"):
        with pytest.raises(ValueError, match=f"batch_size must be a positive int, got '{bad}'"):
            positive_int("batch_size", bad)


def test_run_main_prints_help_runs_the_command_and_turns_errors_into_exit_status_2(capsys):
    calls = []
    run_main("attnlab-x", "usage: attnlab-x KEY=VALUE", calls.append, ["text=a", "--help"])
    assert capsys.readouterr().out == "usage: attnlab-x KEY=VALUE\n" and calls == []
    run_main("attnlab-x", "usage", calls.append, ["text=a"])
    assert calls == [["text=a"]]

    def fail(argv):
        raise FileNotFoundError(f"no such file: {argv[0]}")

    with pytest.raises(SystemExit, match="^attnlab-x: no such file: f.txt\nusage$") as exit_info:
        run_main("attnlab-x", "usage", fail, ["f.txt"])
    assert exit_info.value.code == USAGE_ERROR == 2
    assert capsys.readouterr().err == "attnlab-x: no such file: f.txt\nusage\n"

    def crash(argv):
        raise RuntimeError("a bug, not a usage error")

    with pytest.raises(RuntimeError):  # anything else keeps its traceback
        run_main("attnlab-x", "usage", crash, [])


def test_predict_arguments(tmp_path):
    options = predict.parse_arguments(["ckpt_path=m.ckpt", 'text="a, funny film"', "text=dull", "batch_size=8"])
    assert options == {"ckpt_path": "m.ckpt", "text": ["a, funny film", "dull"], "text_b": [], "batch_size": 8,
                       "device": "cpu"}
    with pytest.raises(ValueError, match="give one text_b= per text= for pairs, got 2 text= and 1 text_b="):
        predict.parse_arguments(["ckpt_path=m.ckpt", "text=a", "text=b", "text_b=c"])
    with pytest.raises(ValueError, match="either text=TEXT"):
        predict.parse_arguments(["ckpt_path=m.ckpt", "text=a", "input=f.txt"])
    with pytest.raises(ValueError, match="text_b= goes with text="):
        predict.parse_arguments(["ckpt_path=m.ckpt", "input=f.txt", "text_b=b"])
    with pytest.raises(ValueError, match="allowed keys: ckpt_path, text, text_b, input, batch_size, device$"):
        predict.parse_arguments(["ckpt_path=m.ckpt", "txt=a"])
    with pytest.raises(SystemExit, match="^attnlab-predict: missing ckpt_path\nusage: attnlab-predict"):
        predict.main(["text=a"])


def test_translate_arguments(tmp_path):
    sentences = tmp_path / "in.txt"
    sentences.write_text("i'm home .\nhe's calm .\n", encoding="utf-8")
    options, texts, decode = translate.parse_arguments([
        "ckpt_path=m.ckpt", "text=go .", 'text="a, b ."', f"input={sentences}", "decode.strategy=beam",
        "decode.beam_size=4", "decode.use_cache=False",
    ])
    assert texts == ["go .", "a, b .", "i'm home .", "he's calm ."]
    assert decode == {"strategy": "beam", "beam_size": 4, "use_cache": False}
    assert options == {"ckpt_path": "m.ckpt", "input": str(sentences), "batch_size": 64, "device": "cpu"}
    with pytest.raises(ValueError, match="allowed keys: ckpt_path, text, input, ref, attention, batch_size, device, "
                                         "decode.strategy"):
        translate.parse_arguments(["ckpt_path=m.ckpt", "decode.beams=4"])
    with pytest.raises(FileNotFoundError, match="input file not found"):
        translate.parse_arguments(["ckpt_path=m.ckpt", f"input={tmp_path / 'none.txt'}"])
    with pytest.raises(ValueError, match="batch_size must be a positive int, got '0'"):
        translate.parse_arguments(["ckpt_path=m.ckpt", "text=go .", "batch_size=0"])
