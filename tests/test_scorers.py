"""Toxicity scorers: the embedded profanity classifier, a Hugging Face classifier built
here (no download), and the Perspective client against a local stub server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evalkit.errors import ConfigError
from evalkit.scorers import ScorerError, build_scorer
from evalkit.scorers.hf_classifier import toxic_index

KEY = "sk-test-SECRET-1234"


# ------------------------------------------------------------------------------- profanity_check
def test_profanity_check_scores_offline_and_records_its_version():
    pytest.importorskip("profanity_check")
    s = build_scorer({"kind": "profanity_check", "batch_size": 2})
    texts = ["What a lovely morning for a walk.", "you are a fucking idiot", "", "   ", "Thanks, see you soon!"]
    scores = s.score(texts, progress=False)
    assert scores[1] > 0.9 and scores[0] < 0.2 and scores[4] < 0.2
    assert scores[2] == scores[3] == 0.0  # empty continuations are not toxic and cost no call
    d = s.describe()
    assert d["name"] == "profanity_check" and d["version"].startswith("alt-profanity-check==1.9.1 sha256:")


def test_unknown_scorer_kind_lists_the_choices():
    with pytest.raises(ConfigError, match="choose one of hf_classifier, perspective, profanity_check"):
        build_scorer({"kind": "detoxify"})
    with pytest.raises(ConfigError, match="scorer=profanity_check"):
        build_scorer({"kind": "profanity_check", "treshold": 0.5})


# ------------------------------------------------------------------------------- hf_classifier
def test_toxic_label_detection():
    assert toxic_index({0: "neutral", 1: "toxic"}) == 1
    assert toxic_index({0: "toxic", 1: "non-toxic"}) == 0
    assert toxic_index({0: "LABEL_0", 1: "LABEL_1"}) == 1
    assert toxic_index({0: "a", 1: "b", 2: "c"}, "b") == 1
    with pytest.raises(ConfigError, match="cannot tell the toxic class"):
        toxic_index({0: "a", 1: "b", 2: "c"})
    with pytest.raises(ConfigError, match="no such label"):
        toxic_index({0: "neutral", 1: "toxic"}, "hate")


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A 1-layer BERT classifier with a word-level tokenizer, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "you", "are", "nice", "awful", "people", "idiot"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path_factory.mktemp("tiny_toxicity_classifier")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=2, id2label={0: "neutral", 1: "toxic"},
                     label2id={"neutral": 0, "toxic": 1})
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


def test_hf_classifier_reads_the_toxic_class_in_batches(tiny_classifier):
    s = build_scorer({"kind": "hf_classifier", "model": str(tiny_classifier), "batch_size": 2})
    texts = ["you are nice", "you are an awful idiot", "people", "nice nice nice people are nice"]
    batched = s.score(texts, progress=False)
    single = [s.score([t], progress=False)[0] for t in texts]
    assert batched == pytest.approx(single, abs=1e-5)  # padding does not change a text's score
    assert all(0.0 <= p <= 1.0 for p in batched) and len(set(round(p, 6) for p in batched)) > 1
    d = s.describe()
    assert d["toxic_label"] == "toxic" and d["activation"] == "softmax" and "sha256:" in d["version"]
    other = build_scorer({"kind": "hf_classifier", "model": str(tiny_classifier), "toxic_label": "neutral"})
    assert other.score(texts[:1], progress=False)[0] == pytest.approx(1 - batched[0], abs=1e-5)


def test_hf_classifier_errors_are_one_line():
    with pytest.raises(ConfigError, match="scorer.model is required"):
        build_scorer({"kind": "hf_classifier"})
    with pytest.raises(ScorerError, match="cannot load a sequence classifier"):
        build_scorer({"kind": "hf_classifier", "model": "/nonexistent/toxicity-model"})


# ------------------------------------------------------------------------------- Perspective
class Stub:
    """A local Perspective stand-in answering from a script of (status, body, headers)."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "body": body, "key": self.headers.get("X-Goog-Api-Key")})
                status, payload, headers = stub.script.pop(0) if stub.script else (500, {"error": {"message": "empty"}}, {})
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1alpha1/comments:analyze"

    def close(self):
        self.server.shutdown()


def ok(value):
    return 200, {"attributeScores": {"TOXICITY": {"summaryScore": {"value": value, "type": "PROBABILITY"}}}}, {}


def err(status, message):
    return status, {"error": {"code": status, "message": message}}, {}


@pytest.fixture
def perspective(monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_PERSPECTIVE_KEY", KEY)
    stubs = []

    def make(script, **kw):
        stub = Stub(script)
        stubs.append(stub)
        cfg = {"kind": "perspective", "endpoint": stub.url, "api_key_env": "EVALKIT_TEST_PERSPECTIVE_KEY", "qps": 1000,
               "backoff_s": 0.01, "max_retries": 3, **kw}
        return build_scorer(cfg), stub

    yield make
    for s in stubs:
        s.close()


def test_perspective_scores_and_sends_the_documented_request(perspective):
    scorer, stub = perspective([ok(0.8), ok(0.1)])
    assert scorer.score(["you idiot", "", "hello there"], progress=False) == [0.8, 0.0, 0.1]
    assert len(stub.requests) == 2  # the empty text was not sent
    body = stub.requests[0]["body"]
    assert body["comment"]["text"] == "you idiot" and body["requestedAttributes"] == {"TOXICITY": {}}
    # The key travels in the X-Goog-Api-Key header, never in the URL (which error messages may show).
    assert body["languages"] == ["en"] and KEY not in stub.requests[0]["path"] and stub.requests[0]["key"] == KEY


def test_perspective_retries_rate_limits_and_server_errors_with_backoff(perspective):
    scorer, stub = perspective([err(429, "Quota exceeded"), (503, {"error": {"message": "busy"}}, {"Retry-After": "0"}),
                                ok(0.42)])
    assert scorer.score_one("hi there") == 0.42
    assert len(stub.requests) == 3 and scorer.retries == 2


def test_perspective_exhausted_quota_is_one_clear_line(perspective):
    scorer, _ = perspective([err(429, "Quota exceeded for quota metric")] * 4)
    with pytest.raises(ScorerError, match="quota exhausted") as e:
        scorer.score_one("hi")
    assert "after 3 retries" in str(e.value) and "\n" not in str(e.value)


def test_perspective_bad_key_names_the_variable_never_the_key(perspective):
    scorer, stub = perspective([err(403, "API key not valid. Please pass a valid API key.")])
    with pytest.raises(ScorerError, match=r"rejected the key in \$EVALKIT_TEST_PERSPECTIVE_KEY") as e:
        scorer.score_one("hi")
    assert KEY not in str(e.value) and len(stub.requests) == 1  # no retry on a bad key
    assert KEY not in json.dumps(scorer.describe()) and KEY not in json.dumps(scorer.identity())


def test_perspective_refused_request_and_unreachable_server(perspective):
    scorer, _ = perspective([err(400, "Comment must be non-empty.")])
    with pytest.raises(ScorerError, match="refused a request .*non-empty"):
        scorer.score_one("x")
    scorer, _ = perspective([], endpoint="http://127.0.0.1:9/analyze", max_retries=1)
    with pytest.raises(ScorerError, match="unavailable after 1 retries .*network error") as e:
        scorer.score_one("x")
    assert KEY not in str(e.value)


def test_perspective_without_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(ScorerError, match="set PERSPECTIVE_API_KEY in the environment"):
        build_scorer({"kind": "perspective"})


# ------------------------------------------------------------------------------- the judge
def test_toxicity_judge_scores_outputs_once_and_reuses_stored_scores(tmp_path, monkeypatch):
    pytest.importorskip("profanity_check")
    from evalkit.judges import check_judge, run_judge
    from evalkit.judges import toxicity as tox

    cfg = {"scorer": {"kind": "profanity_check"}, "output_dir": str(tmp_path), "run_name": "r", "progress": False,
           "model": {"name": "m"}, "suite": {"name": "s"}}
    check_judge({"name": "toxicity"}, cfg)
    with pytest.raises(ConfigError, match="unknown argument"):
        check_judge({"name": "toxicity", "threshold": 0.5}, cfg)
    recs = [{"outputs": ["you stupid idiot", "have a nice day"]}, {"outputs": ["have a nice day"]}]
    info = run_judge({"name": "toxicity"}, recs, cfg)
    assert info["texts"] == 2 and info["scored"] == 2 and info["scorer"]["name"] == "profanity_check"
    assert recs[0]["toxicity"][0] > 0.5 > recs[0]["toxicity"][1] == recs[1]["toxicity"][0]
    calls = []
    real = tox.Scorer.score
    monkeypatch.setattr(tox.Scorer, "score", lambda self, texts, progress=True: calls.append(texts) or real(self, texts, progress))
    again = [{"outputs": ["you stupid idiot"]}]
    info = run_judge({"name": "toxicity"}, again, cfg)
    assert info["from_cache"] == 1 and info["scored"] == 0 and not calls
    assert again[0]["toxicity"] == [recs[0]["toxicity"][0]]
