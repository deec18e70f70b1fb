"""Scripts: sentence splitting, segmenting, Markdown headings, Podium script JSON, and the
messages for scripts that cannot be used."""
from __future__ import annotations

import json

import pytest

from podium.engines.script import Script, parse_script, split_script, split_sentences
from podium.errors import PodiumError


# ---- sentences ----

@pytest.mark.parametrize("text, expected", [
    ("Hello there. How are you?", ["Hello there.", "How are you?"]),
    # abbreviations and titles
    ("Dr. Smith arrived. He sat down.", ["Dr. Smith arrived.", "He sat down."]),
    ("I met Mr. Brown and Mrs. Green. They waved.", ["I met Mr. Brown and Mrs. Green.", "They waved."]),
    ("Prof. Jones teaches. St. Louis is a city.", ["Prof. Jones teaches.", "St. Louis is a city."]),
    ("See Fig. 3 for details. Done.", ["See Fig. 3 for details.", "Done."]),
    ("Use a tool, e.g. a hammer. Then stop.", ["Use a tool, e.g. a hammer.", "Then stop."]),
    ("Some fruit, i.e. apples. Good.", ["Some fruit, i.e. apples.", "Good."]),
    ("Apples, pears, etc. and more. Fine.", ["Apples, pears, etc. and more.", "Fine."]),
    # decimals and money
    ("Pi is about 3.14 today. Yes.", ["Pi is about 3.14 today.", "Yes."]),
    ("It costs $3.50. Cheap.", ["It costs $3.50.", "Cheap."]),
    ("Version 2.0 is out. Try it.", ["Version 2.0 is out.", "Try it."]),
    ("The answer is 42. The question is unknown.", ["The answer is 42.", "The question is unknown."]),
    # initials
    ("J. R. R. Tolkien wrote books. They sold.", ["J. R. R. Tolkien wrote books.", "They sold."]),
    ("George W. Bush spoke. People listened.", ["George W. Bush spoke.", "People listened."]),
    ("We met at 5 p.m. Then we left.", ["We met at 5 p.m.", "Then we left."]),
    ("The U.S. economy grew. Prices rose.", ["The U.S. economy grew.", "Prices rose."]),
    # quotes and brackets close the sentence with its punctuation
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("She said “Go.” He went.", ["She said “Go.”", "He went."]),
    ("It works (mostly.) Try it.", ["It works (mostly.)", "Try it."]),
    ("He asked (why?) and left.", ["He asked (why?) and left."]),
    # ellipsis, both spellings; a lower-case continuation is the same sentence
    ("Wait... What happened? Nothing!", ["Wait...", "What happened?", "Nothing!"]),
    ("Wait… What?", ["Wait…", "What?"]),
    ("Well... maybe not. Fine.", ["Well... maybe not.", "Fine."]),
    # runs of terminal marks
    ("Really?! Yes.", ["Really?!", "Yes."]),
    ("Wow!!! Amazing.", ["Wow!!!", "Amazing."]),
    # whitespace and line breaks inside a paragraph
    ("  One   two.\n\tThree  four.  ", ["One two.", "Three four."]),
    ("No final stop", ["No final stop"]),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_split_sentences_of_nothing(text):
    assert split_sentences(text) == []


def test_split_sentences_keeps_every_word():
    text = ("Dr. Who met J. Smith at 3.5 km, e.g. near St. Paul's. Was it late?! Maybe... "
            "“Yes.” (Really.) The end")
    assert " ".join(split_sentences(text)).split() == text.split()


def test_no_as_an_answer_ends_a_sentence():
    assert split_sentences("Is it hard? No. It takes five minutes.") == \
        ["Is it hard?", "No.", "It takes five minutes."]
    assert split_sentences("Look at No. 5 on the list. Done.") == ["Look at No. 5 on the list.", "Done."]


# ---- segments ----

def test_plain_text_is_one_segment_titled_by_its_first_words():
    script = split_script("The quick brown fox jumps over the lazy dog today. It was fun.")
    assert isinstance(script, Script)
    assert len(script.segments) == 1
    assert script.title == "The quick brown fox jumps over…"
    assert script.segments[0].title == script.title
    assert script.segments[0].sentences == ["The quick brown fox jumps over the lazy dog today.",
                                            "It was fun."]
    assert script.segments[0].bullets == ["The quick brown fox jumps over the lazy dog…", "It was fun"]
    assert script.sentences == script.segments[0].sentences


def test_blank_lines_start_new_segments():
    script = split_script("First one. First two.\n\nSecond one.\n  \n\nThird one.")
    assert [s.sentences for s in script.segments] == [
        ["First one.", "First two."], ["Second one."], ["Third one."]]
    assert script.segments[0].text == "First one. First two."


def test_single_line_breaks_do_not_split_sentences():
    script = split_script("This sentence runs\nover two lines. Next.")
    assert script.sentences == ["This sentence runs over two lines.", "Next."]


def test_windows_line_endings():
    script = split_script("# Title\r\nOne.\r\n\r\nTwo.")
    assert script.title == "Title"
    assert [s.sentences for s in script.segments] == [["One."], ["Two."]]


def test_max_words_packs_sentences_without_cutting_them():
    script = split_script("One two three. Four five six. Seven eight nine ten.", max_words=6)
    assert [s.sentences for s in script.segments] == [
        ["One two three.", "Four five six."], ["Seven eight nine ten."]]
    # A sentence longer than the limit stays whole, in a segment of its own.
    script = split_script("One two three four five six seven eight. Short. Also short.", max_words=3)
    assert [s.sentences for s in script.segments] == [
        ["One two three four five six seven eight."], ["Short.", "Also short."]]
    for seg in split_script(" ".join(f"Word{i} and more." for i in range(30)), max_words=10).segments:
        assert sum(len(s.split()) for s in seg.sentences) <= 10


def test_max_words_must_be_positive():
    with pytest.raises(PodiumError, match="max_words"):
        split_script("Hello.", max_words=0)


def test_title_and_slide_headings():
    script = split_script("# My Talk\n## Intro\nHello there. This is one.\n\n"
                          "## Next part\nThird bit. Fourth bit.\n\nMore of the next part.")
    assert script.title == "My Talk"
    assert [(s.title, s.sentences) for s in script.segments] == [
        ("Intro", ["Hello there.", "This is one."]),
        ("Next part", ["Third bit.", "Fourth bit."]),
        ("Next part", ["More of the next part."]),  # a heading titles what follows, until the next
    ]
    assert "My Talk" not in " ".join(script.sentences)  # headings are shown, not spoken
    assert "Intro" not in " ".join(script.sentences)


def test_segments_before_any_heading_take_the_video_title():
    script = split_script("# The Title\nOpening words.\n\n## Part two\nMore words.")
    assert [(s.title, s.sentences) for s in script.segments] == [
        ("The Title", ["Opening words."]), ("Part two", ["More words."])]


def test_title_argument_wins():
    assert split_script("# From the file\nHello.", title="Given").title == "Given"
    assert split_script("Hello.", title="Given").segments[0].title == "Given"


def test_heading_without_a_blank_line_before_it_titles_only_what_follows():
    script = split_script("## One\nFirst slide text.\n## Two\nSecond slide text.")
    assert [(s.title, s.sentences) for s in script.segments] == [
        ("One", ["First slide text."]), ("Two", ["Second slide text."])]


def test_a_line_starting_with_hash_but_no_space_is_narration():
    script = split_script("#1 rule: stay safe. Wear a helmet.")
    assert script.sentences == ["#1 rule: stay safe.", "Wear a helmet."]


# ---- empty scripts ----

@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n", "# Only a title", "# Title\n## A heading\n\n## Another"])
def test_empty_script_says_what_to_give(text):
    with pytest.raises(PodiumError) as err:
        parse_script(text)
    message = str(err.value)
    assert "empty" in message and "narration" in message  # flags are the CLI's to name


# ---- Podium script JSON ----

def test_script_json():
    raw = json.dumps({
        "title": "A talk", "stage": "a bright studio",
        "segments": [
            {"text": "Dr. Who arrived. He smiled.", "title": "Arrival", "speaker": "narrator"},
            {"text": "Then he left.", "bullets": ["leaving"]},
            {"text": "   "},  # nothing to say: dropped
        ],
    })
    script = parse_script("\n  " + raw)
    assert script.title == "A talk" and script.stage == "a bright studio"
    assert len(script.segments) == 2
    first, second = script.segments
    assert (first.title, first.sentences, first.speaker) == ("Arrival", ["Dr. Who arrived.", "He smiled."], "narrator")
    assert first.bullets == ["Dr. Who arrived", "He smiled"]
    assert (second.title, second.bullets, second.speaker) == ("A talk", ["leaving"], "")
    assert script.to_dict()["segments"][0] == {"text": "Dr. Who arrived. He smiled.", "title": "Arrival",
                                               "bullets": ["Dr. Who arrived", "He smiled"],
                                               "speaker": "narrator"}
    # A round trip through to_dict gives the same script.
    again = parse_script(json.dumps(script.to_dict()))
    assert again.to_dict() == script.to_dict()


def test_script_json_title_falls_back_to_the_first_words():
    script = parse_script('{"segments": [{"text": "Seven words are in this first sentence here."}]}')
    assert script.title == "Seven words are in this first…"
    assert parse_script('{"segments": [{"text": "Hi."}]}', title="Given").title == "Given"


@pytest.mark.parametrize("raw, expected", [
    ("{not json at all", "the script JSON: is not valid JSON (Expecting property name enclosed in "
                         "double quotes: line 1 column 2 (char 1)); a Podium script JSON is "
                         '{"title": ..., "segments": [{"text": ...}]}'),
    ('{"title": "no segments"}', 'the script JSON: segments: is missing (a Podium script JSON is '
                                 '{"title": ..., "segments": [{"text": ...}]})'),
    ('{"segments": 3}', "the script JSON: segments: must be a list of segments"),
    ('{"segments": ["just a string"]}', "the script JSON: segments[0]: must be an object"),
    ('{"segments": [{"title": "no text"}]}', "the script JSON: segments[0].text: is missing"),
    ('{"segments": [{"text": 5}]}', "the script JSON: segments[0].text: must be a string"),
    ('{"title": 5, "segments": [{"text": "Hi."}]}', "the script JSON: title: must be a string"),
    ('{"segments": [{"text": "Hi."}, {"text": "Yo.", "speaker": {"name": "A"}}]}',
     "the script JSON: segments[1].speaker: must be a string"),
    ('{"segments": [{"text": "Hi.", "bullets": "abc"}]}',
     "the script JSON: segments[0].bullets: must be a list of strings"),
    ('{"segments": [{"text": "Hi.", "bullets": ["a", 2]}]}',
     "the script JSON: segments[0].bullets[1]: must be a string"),
    ('[{"text": "Hi."}]', "the script JSON: must be a JSON object "
                          '{"title": ..., "segments": [{"text": ...}]}'),
])
def test_bad_script_json_names_the_field(raw, expected):
    with pytest.raises(PodiumError) as err:
        parse_script(raw)
    assert str(err.value) == expected
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_script_json_nulls_are_fields_left_out():
    script = parse_script('{"title": null, "stage": null, "segments": [{"text": "Hi.", '
                          '"title": null, "bullets": null, "speaker": null}]}')
    assert (script.title, script.stage, script.segments[0].bullets) == ("Hi", "", ["Hi"])


def test_a_json_file_must_be_script_json_and_other_brackets_are_text():
    with pytest.raises(PodiumError, match="is not valid JSON"):
        parse_script("Hello there.", as_json=True)  # a .json file that is not JSON
    assert parse_script("[Music] Hello there.").sentences == ["[Music] Hello there."]


def test_script_json_without_narration():
    with pytest.raises(PodiumError, match="no segment has any narration"):
        parse_script('{"title": "T", "segments": [{"text": " "}, {"text": ""}]}')
    with pytest.raises(PodiumError, match="no segment has any narration"):
        parse_script('{"segments": []}')


def test_text_that_merely_mentions_braces_is_not_json():
    script = parse_script("Use {curly} braces. Done.")
    assert script.sentences == ["Use {curly} braces.", "Done."]


def test_control_characters_are_dropped_from_the_narration():
    from podium.engines.script import clean_text

    assert clean_text("Hi\x00 the\x1bre\x07!\x7f\ud800") == "Hi there!"
    assert clean_text("tabs\tand\nlines\r\nstay") == "tabs\tand\nlines\r\nstay"
    assert clean_text("café, naïve — “quoted” 日本") == "café, naïve — “quoted” 日本"
    assert split_sentences("One\x00. Two\x08 here.") == ["One.", "Two here."]
    assert split_script("# Ti\x00tle\nHello\x00 there.").title == "Title"
