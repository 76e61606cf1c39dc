"""Turns HTML documentation into one sentence per line (a test corpus for tools/lm/compare_lmplz.py): text outside
<pre>, <script>, <style> and navigation, split at sentence ends, upper-cased with every character but letters and
apostrophes made a space (the spelling of our acoustic models' transcripts).

    /work/venv/bin/python tools/lm/html_to_sentences.py FILE.html... > corpus.txt
"""
import html.parser
import re
import sys

SKIP = {"pre", "script", "style", "nav", "head", "code"}
BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "div", "dd", "dt", "blockquote", "br"}


class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if tag in SKIP:
            self.depth += 1
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in SKIP:
            self.depth = max(0, self.depth - 1)
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.depth == 0:
            self.parts.append(data.replace("\n", " "))


def sentences(text):
    for block in text.split("\n"):
        for sentence in re.split(r"(?<=[.!?])\s+", block):
            words = re.sub(r"[^A-Z']+", " ", sentence.upper().replace("\u2019", "'")).split()
            words = [w.strip("'") for w in words if w.strip("'")]
            if len(words) >= 3:
                yield " ".join(words)


def main():
    for path in sys.argv[1:]:
        parser = Text()
        with open(path, encoding="utf-8") as f:
            parser.feed(f.read())
        for sentence in sentences("".join(parser.parts)):
            print(sentence)


if __name__ == "__main__":
    main()
