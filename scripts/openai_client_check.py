"""The official `openai` Python client against a running `asr serve`: every response format, word timestamps and two
error statuses, compared with what the `asr` CLI prints for the same file. Run by scripts/test-openai-client.sh."""
import argparse
import json
import subprocess
import sys

import openai
from openai import OpenAI

parser = argparse.ArgumentParser()
parser.add_argument("--base-url", required=True)
parser.add_argument("--api-key", required=True)
parser.add_argument("--asr", required=True, help="the asr binary (for the CLI's transcripts)")
parser.add_argument("--model", default="builtin")
parser.add_argument("samples", nargs="+")
args = parser.parse_args()

client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def cli(sample, fmt):
    return subprocess.run([args.asr, "transcribe", sample, "--format", fmt], check=True, capture_output=True, text=True).stdout


def transcribe(sample, model=None, **kwargs):
    with open(sample, "rb") as f:
        return client.audio.transcriptions.create(model=model or args.model, file=f, **kwargs)


for sample in args.samples:
    txt = cli(sample, "txt")
    result = transcribe(sample, response_format="json")
    check(result.text == txt[:-1], f"{sample}: json text == CLI txt ({result.text!r})")
    for fmt, cli_format in [("text", "txt"), ("srt", "srt"), ("vtt", "vtt")]:
        result = transcribe(sample, response_format=fmt)
        check(isinstance(result, str) and result == cli(sample, cli_format), f"{sample}: {fmt} == CLI {cli_format}, byte for byte")
    cli_json = json.loads(cli(sample, "json"))
    verbose = transcribe(sample, response_format="verbose_json", timestamp_granularities=["word", "segment"],
                         language="en", temperature=0.0, prompt="temperature")
    check(verbose.text.replace(" ", "") != "" or txt.strip() == "", f"{sample}: verbose_json has text")
    plain = transcribe(sample, response_format="verbose_json", timestamp_granularities=["word"])
    check(plain.text == cli_json["text"], f"{sample}: verbose_json text == CLI")
    check(abs(plain.duration - cli_json["duration"]) < 1e-9, f"{sample}: verbose_json duration == CLI ({plain.duration})")
    words = [(w.word, w.start, w.end) for w in (plain.words or [])]
    expected = [(w["text"], w["start"], w["end"]) for w in cli_json["words"]]
    check(words == expected, f"{sample}: verbose_json words with start/end == CLI ({len(words)} words)")
    check(len(plain.segments or []) >= (1 if expected else 0), f"{sample}: verbose_json segments ({len(plain.segments or [])})")

# stream=True: the SDK iterates Server-Sent Events; the deltas add up to the text, and the done event's text is the
# non-streamed response's.
for sample in args.samples:
    expected = transcribe(sample, response_format="json").text
    deltas, done, kinds = [], None, []
    for event in transcribe(sample, response_format="json", stream=True):
        kinds.append(event.type)
        if event.type == "transcript.text.delta":
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event.text
    check(done == expected, f"{sample}: stream=True done text == non-streamed ({done!r})")
    check("".join(deltas) == expected, f"{sample}: stream=True deltas add up to the text ({len(deltas)} deltas)")
    check(kinds and kinds[-1] == "transcript.text.done", f"{sample}: stream ends with transcript.text.done ({kinds})")

try:
    transcribe(args.samples[0], response_format="json", model="whisper-1")
    check(False, "unknown model → 404")
except openai.NotFoundError as e:
    check(e.status_code == 404 and e.body.get("code") == "model_not_found", f"unknown model → NotFoundError 404 ({e.body})")

try:
    OpenAI(base_url=args.base_url, api_key="wrong", max_retries=0).models.list()
    check(False, "wrong key → 401")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "wrong key → AuthenticationError 401")

try:
    with open(args.samples[0], "rb") as f:
        client.audio.translations.create(model=args.model, file=f)
    check(False, "translations → 400")
except openai.BadRequestError as e:
    check(e.status_code == 400, "translations → BadRequestError 400")

models = [m.id for m in client.models.list()]
check(args.model in models, f"models.list() has {args.model} ({models})")

print(f"openai {openai.__version__}: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
