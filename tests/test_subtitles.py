"""SRT written by the `srt` library from the cues: numbered from 1, times to the nearest ms."""
import srt

from podium.engines.speech import SpeechBuilder
from podium.engines.subtitles import Cue, cues_from_speech, to_srt

import numpy as np


def test_srt_round_trips_through_the_srt_library():
    cues = [Cue(0.25, 1.2346, "Hello\nthere"), Cue(3661.9996, 3662.5, "Bye, “now”")]
    text = to_srt(cues)
    assert text.startswith("1\n00:00:00,250 --> 00:00:01,235\nHello\nthere\n\n2\n01:01:02,000 --> ")
    parsed = list(srt.parse(text, ignore_errors=False))
    assert [(p.index, p.content) for p in parsed] == [(1, "Hello\nthere"), (2, "Bye, “now”")]
    assert [p.end.total_seconds() for p in parsed] == [1.235, 3662.5]


def test_a_long_sentence_is_shared_over_cues_within_its_span():
    builder = SpeechBuilder(16000)
    long_sentence = " ".join(["word"] * 60) + "."
    builder.add_sentence(long_sentence, np.ones(16000 * 6, np.float32) * 0.1)
    builder.end_segment()
    speech = builder.build()
    cues = cues_from_speech(speech)
    span = speech.sentences[0]
    assert len(cues) > 1 and cues[0].start == span.start and abs(cues[-1].end - span.end) < 1e-9
    assert all(len(c.text.split("\n")) <= 2 for c in cues)
    assert " ".join(c.text.replace("\n", " ") for c in cues) == long_sentence
