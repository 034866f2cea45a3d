"""Fine-tuning data: TSV reading, [CLS] A [SEP] (B [SEP]) inputs with segments and truncation, the DataModule's
splits, its tokenizer (handed in, or trained) and its checkpointed state."""
import gzip

import pytest
import torch

from attnlab.data.bert_inputs import SPECIAL_TOKENS
from attnlab.data.classification import ClassificationDataModule
from attnlab.data.classification_inputs import encode_texts, normalize
from attnlab.data.spec import TextSpec
from attnlab.data.text_io import read_labelled_tsv
from attnlab.data.tokenizers import word

PAD, UNK, CLS, SEP, MASK = range(5)  # ids of SPECIAL_TOKENS
SST2_LABELS = {"0": "negative", "1": "positive"}
SNLI_LABELS = {"entailment": "entailment", "neutral": "neutral", "contradiction": "contradiction"}


def write_tsv(path, header, rows):
    text = "\n".join(["\t".join(header), *("\t".join(row) for row in rows)]) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def tokenizer_of(texts):
    return word(min_freq=1).train(texts, SPECIAL_TOKENS)


def sst2_files(tmp_path, num_train=50):
    rows = [(f"film number w{i} was {'good' if i % 2 else 'bad'} ", str(i % 2)) for i in range(num_train)]
    train = write_tsv(tmp_path / "train.tsv.gz", ["sentence", "label"], rows)
    test = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], [("a good film ", "1"), ("a bad film ", "0")])
    return train, test


def sst2_module(tmp_path, **kwargs):
    train, test = sst2_files(tmp_path)
    options = dict(text_columns=["sentence"], labels=SST2_LABELS, val_fraction=0.2, max_len=16, batch_size=4,
                   tokenizer=lambda: word(min_freq=1))
    return ClassificationDataModule(train, test, **{**options, **kwargs})


# ---- reading -----------------------------------------------------------------------------------------------------
def test_missing_file_names_the_path_and_how_to_get_it(tmp_path):
    module = ClassificationDataModule(
        tmp_path / "sst2" / "train.tsv.gz", tmp_path / "sst2" / "dev.tsv.gz", ["sentence"], SST2_LABELS,
        how_to_get="download GLUE's SST-2", tokenizer=word,
    )
    with pytest.raises(FileNotFoundError, match=r"sst2/train.tsv.gz. How to get it: download GLUE's SST-2"):
        module.prepare_data()
    with pytest.raises(FileNotFoundError, match=r"sst2/train.tsv.gz"):
        module.setup("fit")


def test_normalize_lowercases_and_splits_punctuation_off_words():
    assert normalize(' A man plays "Guitar". ', lowercase=True, split_punctuation=True) == 'a man plays " guitar " .'
    assert normalize("it 's fine , really ", lowercase=False) == "it 's fine , really"


# ---- model inputs ------------------------------------------------------------------------------------------------
def test_single_texts_are_cls_text_sep_with_segment_zero_and_cut_from_the_end():
    tokenizer = tokenizer_of(["a b c d e f g"])
    a, b, c, d, e = (tokenizer.token_to_id(t) for t in "abcde")
    batch = encode_texts(tokenizer, [["a b", "a b c d e f g"]], max_len=7)
    assert batch.tokens.tolist() == [[CLS, a, b, SEP, PAD, PAD, PAD], [CLS, a, b, c, d, e, SEP]]
    assert batch.segments.tolist() == [[0] * 7] * 2
    assert batch.valid_lens.tolist() == [4, 7]
    assert batch.labels.tolist() == [-1, -1]


def test_pairs_carry_segment_one_on_b_and_sep_and_truncate_longest_first():
    tokenizer = tokenizer_of(["a1 a2 a3 a4 a5 a6 b1 b2 b3"])
    ids = {t: tokenizer.token_to_id(t) for t in "a1 a2 a3 a4 a5 a6 b1 b2 b3".split()}
    batch = encode_texts(tokenizer, [["a1 a2", "a1 a2 a3 a4 a5 a6"], ["b1 b2 b3", "b1 b2"]], max_len=9)
    a1, a2, a3, a4, b1, b2, b3 = (ids[t] for t in ("a1", "a2", "a3", "a4", "b1", "b2", "b3"))
    assert batch.tokens.tolist() == [
        [CLS, a1, a2, SEP, b1, b2, b3, SEP, PAD],  # fits: untouched
        [CLS, a1, a2, a3, a4, SEP, b1, b2, SEP],  # 6 + 2 > 6: the longer A loses its tail, B keeps both tokens
    ]
    assert batch.segments.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0, 1, 1, 1]]
    assert batch.valid_lens.tolist() == [8, 9]


def test_inputs_reject_mismatched_pairs_and_too_short_max_len():
    tokenizer = tokenizer_of(["a b"])
    with pytest.raises(ValueError, match="as many texts B as texts A"):
        encode_texts(tokenizer, [["a", "b"], ["a"]], max_len=8)
    with pytest.raises(ValueError, match="max_len=3 leaves no room"):
        encode_texts(tokenizer, [["a"], ["b"]], max_len=3)
    assert encode_texts(tokenizer, [["a b"], ["b"]], max_len=4).valid_lens.tolist() == [4]  # one token of A fits


# ---- the DataModule ----------------------------------------------------------------------------------------------
def test_validation_is_a_seeded_slice_of_train_and_the_tokenizer_sees_train_only(tmp_path):
    module = sst2_module(tmp_path, seed=3)
    module.setup("fit")
    sizes = {split: len(batch.labels) for split, batch in module.splits.items()}
    assert sizes == {"train": 40, "val": 10, "test": 2}
    again = sst2_module(tmp_path, seed=3)
    again.setup("fit")
    assert torch.equal(again.splits["val"].tokens, module.splits["val"].tokens)
    other = sst2_module(tmp_path, seed=4)
    other.setup("fit")
    assert not torch.equal(other.splits["val"].tokens, module.splits["val"].tokens)
    # each sentence has its own word w<i>: those of the validation slice are unknown to the tokenizer
    val_words = module.splits["val"].tokens[:, 3]  # [CLS] film number w<i> ...
    assert (val_words == UNK).all() and not (module.splits["train"].tokens[:, 3] == UNK).any()
    assert module.spec() == TextSpec(vocab_size=module.tokenizer.vocab_size, pad_id=PAD, max_len=16, num_classes=2)


def test_batches_are_cut_to_their_longest_row(tmp_path):
    module = sst2_module(tmp_path, max_len=32)
    module.setup("fit")
    batch = next(iter(module.test_dataloader()))
    assert batch.tokens.shape == (2, 5) == batch.segments.shape  # [CLS] a good film [SEP]
    assert batch.labels.tolist() == [1, 0]


def test_training_order_is_a_function_of_seed_and_epoch(tmp_path):
    module = sst2_module(tmp_path)
    module.setup("fit")

    def order(loader, epoch):
        loader.sampler.set_epoch(epoch)  # what Lightning calls at the start of each epoch
        return torch.cat([batch.tokens[:, 3] for batch in loader]).tolist()  # each row's w<i> id

    loader = module.train_dataloader()
    first, second = order(loader, 0), order(loader, 1)
    assert first != second and sorted(first) == sorted(second)
    assert order(module.train_dataloader(), 0) == first  # a new loader (a resumed run) replays epoch 0
    test_order = [batch.labels.tolist() for batch in module.test_dataloader()]
    assert test_order == [[1, 0]]  # evaluation keeps the file order


def test_a_restored_training_loader_resumes_at_the_next_batch_of_the_epoch(tmp_path):
    module = sst2_module(tmp_path)
    module.setup("fit")
    loader = module.train_dataloader()
    loader.sampler.set_epoch(1)
    full = [batch.tokens for batch in loader]
    loader.sampler.set_epoch(1)
    interrupted = iter(loader)
    for _ in range(4):
        next(interrupted)
    state = loader.state_dict()  # what a mid-epoch checkpoint stores
    assert state == {"batches_served": 4} and len(full) > 5

    resumed_module = sst2_module(tmp_path)  # a new process: setup, then the checkpoint's state
    resumed_module.setup("fit")
    resumed_module.load_state_dict(module.state_dict())
    resumed = resumed_module.train_dataloader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)  # Lightning sets the epoch after restoring the position
    rest = [batch.tokens for batch in resumed]
    assert len(rest) == len(full) - 4
    assert all(torch.equal(x, y) for x, y in zip(rest, full[4:]))
    assert len(list(resumed)) == len(full)  # the skip applies once: the next epoch is whole


def test_pair_task_val_file_and_label_names(tmp_path):
    rows = [("entailment", "A dog runs.", "An animal moves."), ("contradiction", "A cat sleeps.", "A cat runs.")]
    files = [write_tsv(tmp_path / f"{name}.tsv.gz", ["label", "sentence1", "sentence2"], rows) for name in ("train", "dev", "test")]
    module = ClassificationDataModule(
        files[0], files[2], ["sentence1", "sentence2"], SNLI_LABELS, val_file=files[1], lowercase=True,
        split_punctuation=True, tokenizer=lambda: word(min_freq=1), max_len=16,
    )
    module.setup("fit")
    assert module.label_names == ["entailment", "neutral", "contradiction"] and module.num_classes == 3
    assert module.splits["train"].labels.tolist() == [0, 2]
    first = module.splits["val"]
    assert module.tokenizer.decode_batch(first.tokens[:1, 1:4].tolist()) == ["a dog runs"]
    assert first.segments[0, : first.valid_lens[0]].tolist() == [0] * 6 + [1] * 5  # [CLS] a dog runs . [SEP] | 4 + [SEP]
    with pytest.raises(ValueError, match="reads text pairs"):
        module.encode(["a dog"])


def test_a_handed_in_tokenizer_is_used_as_it_is(tmp_path):
    pretrained_tokenizer = tokenizer_of(["film good bad number was", "wikitext words only"])
    module = sst2_module(tmp_path, tokenizer=pretrained_tokenizer)
    module.setup("fit")
    assert module.tokenizer is pretrained_tokenizer  # not retrained on the fine-tuning data
    assert module.spec() == TextSpec(vocab_size=pretrained_tokenizer.vocab_size, pad_id=PAD, max_len=16, num_classes=2)
    with pytest.raises(ValueError, match="tokenizer must be a trained tokenizer .* or a factory of one to train"):
        sst2_module(tmp_path, tokenizer=word(min_freq=1))  # an untrained one


def test_checkpointed_tokenizer_encodes_new_text_without_the_files(tmp_path):
    module = sst2_module(tmp_path)
    module.setup("fit")
    restored = ClassificationDataModule(tmp_path / "gone.tsv", tmp_path / "gone.tsv", ["sentence"], SST2_LABELS,
                                        tokenizer=word, max_len=16)
    restored.load_state_dict(module.state_dict())
    assert restored.tokenizer == module.tokenizer
    assert torch.equal(restored.encode(["a good film"]).tokens, module.encode(["a good film"]).tokens)


# ---- the real files ----------------------------------------------------------------------------------------------
@pytest.mark.data
def test_shared_sst2_and_snli_files_read_with_their_published_sizes(shared_data):
    sst2, snli = shared_data / "sst2", shared_data / "snli"
    if not (sst2 / "train.tsv.gz").is_file() or not (snli / "dev.tsv.gz").is_file():
        pytest.skip("sst2/ or snli/ not in the shared data")
    sst2_labels = {"0": 0, "1": 1}
    assert len(read_labelled_tsv(sst2 / "train.tsv.gz", ["sentence"], "label", sst2_labels).labels) == 67349
    dev = read_labelled_tsv(sst2 / "dev.tsv.gz", ["sentence"], "label", sst2_labels)
    assert len(dev.labels) == 872 and int(dev.labels.sum()) == 444
    labels = {name: index for index, name in enumerate(SNLI_LABELS)}
    snli_dev = read_labelled_tsv(snli / "dev.tsv.gz", ["sentence1", "sentence2"], "label", labels)
    assert len(snli_dev.labels) == 9842 and torch.bincount(snli_dev.labels).tolist() == [3329, 3235, 3278]
    sample = read_labelled_tsv(snli / "train_sample_1pct.tsv.gz", ["sentence1", "sentence2"], "label", labels)
    assert len(sample.labels) == 5498
