"""Transcript text: zh-CN -> zh-TW, Chinese numerals -> digits, and WER/CER against a reference."""

import re
import string
import unicodedata
import warnings
from functools import lru_cache

import cn2an
import jiwer

# Digits read one by one ("零九零零...") are a number string, not a quantity: cn2an would read
# 零九零零零七三三三一 as 900073331 and lose the leading zero, so such runs are turned into
# digits first, character by character.
_DIGIT_BY_DIGIT = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "兩": "2", "两": "2",
                   "三": "3", "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
_UNITS = "十拾百佰千仟萬万億亿點点"
_DIGIT_RUN = re.compile(
    rf"(?<![{_UNITS}])[{''.join(_DIGIT_BY_DIGIT)}]{{2,}}(?![{_UNITS}])"
)
_ASR_TEXT_TAG = "<asr_text>"


@lru_cache(maxsize=None)
def _converter(config: str):
    import opencc  # opencc-python-reimplemented

    return opencc.OpenCC(config)


def strip_asr_prefix(text: str) -> str:
    """Qwen3-ASR may emit 'language Chinese<asr_text>' before the transcript: keep what follows."""
    if _ASR_TEXT_TAG in text:
        text = text.split(_ASR_TEXT_TAG, 1)[1]
    return text.strip()


def to_traditional(text: str) -> str:
    """zh-CN -> zh-TW with Taiwan phrases (OpenCC s2twp)."""
    return _converter("s2twp").convert(text)


def digits_read_one_by_one(text: str) -> str:
    """零九零零零七三三三一 -> 0900073331; leaves quantities such as 一百二十三 alone."""
    return _DIGIT_RUN.sub(lambda m: "".join(_DIGIT_BY_DIGIT[c] for c in m.group()), text)


def inverse_normalize(text: str) -> str:
    """Chinese numerals -> Arabic digits, keeping the leading zeros of digit strings."""
    text = digits_read_one_by_one(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cn2an warns about numerals it cannot read and leaves them as they are
        try:
            return cn2an.transform(text, "cn2an")
        except (ValueError, KeyError):
            return text


class SplitCJKCharacters(jiwer.AbstractTransform):
    """Each CJK character becomes a word of its own; runs of letters or digits stay one word."""

    def process_string(self, s: str) -> str:
        return re.sub(r"([\u3400-\u9fff\uf900-\ufaff])", r" \1 ", s)


class RemoveAllPunctuation(jiwer.AbstractTransform):
    """ASCII and CJK punctuation (，。！？、「」…) alike."""

    def process_string(self, s: str) -> str:
        return "".join(
            " " if (c in string.punctuation or unicodedata.category(c).startswith("P")) else c for c in s
        )


_COMMON = [jiwer.ToLowerCase(), RemoveAllPunctuation()]
CHINESE_WORDS = jiwer.Compose(
    _COMMON + [SplitCJKCharacters(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()]
)
CHINESE_CHARS = jiwer.Compose(_COMMON + [jiwer.RemoveWhiteSpace(replace_by_space=False), jiwer.ReduceToListOfListOfChars()])
_ENGLISH = [jiwer.ToLowerCase(), jiwer.ExpandCommonEnglishContractions(), RemoveAllPunctuation(),
            jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
ENGLISH_WORDS = jiwer.Compose(_ENGLISH + [jiwer.ReduceToListOfListOfWords()])
ENGLISH_CHARS = jiwer.Compose(_ENGLISH + [jiwer.ReduceToListOfListOfChars()])


def is_chinese(language: str) -> bool:
    return language.lower() in ("chinese", "zh", "zh-cn", "zh-tw", "cantonese", "yue", "mandarin")


def normalize_transcript(raw: str, language: str) -> dict:
    """Every stage of the text pipeline, so a record shows how the score came about."""
    text = strip_asr_prefix(raw)
    if is_chinese(language):
        traditional = to_traditional(text)
        return {"text": text, "text_zh_tw": traditional, "text_itn": inverse_normalize(traditional)}
    return {"text": text, "text_zh_tw": None, "text_itn": text}


def _empty_safe(measure, reference: str, hypothesis: str, words, chars, use_chars: bool) -> float:
    transform = chars if use_chars else words
    if not transform(hypothesis)[0]:
        return 1.0  # nothing recognised: every reference unit is an error
    return float(measure(reference, hypothesis, reference_transform=transform, hypothesis_transform=transform))


def word_error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER; for Chinese every character is a word and a digit string is one word."""
    words, chars = (CHINESE_WORDS, CHINESE_CHARS) if is_chinese(language) else (ENGLISH_WORDS, ENGLISH_CHARS)
    return _empty_safe(jiwer.wer, reference, hypothesis, words, chars, use_chars=False)


def character_error_rate(reference: str, hypothesis: str, language: str) -> float:
    """CER; spaces and punctuation are not characters here."""
    words, chars = (CHINESE_WORDS, CHINESE_CHARS) if is_chinese(language) else (ENGLISH_WORDS, ENGLISH_CHARS)
    return _empty_safe(jiwer.cer, reference, hypothesis, words, chars, use_chars=True)


def score(raw_transcript: str, reference: str, language: str) -> dict:
    """Normalise a raw transcript and score it: the text fields and error rates of one iteration."""
    texts = normalize_transcript(raw_transcript, language)
    hypothesis = texts["text_itn"]
    reference_itn = normalize_transcript(reference, language)["text_itn"]
    return {
        **texts,
        "wer": word_error_rate(reference_itn, hypothesis, language),
        "cer": character_error_rate(reference_itn, hypothesis, language),
        "exact_match": CHINESE_CHARS(reference_itn) == CHINESE_CHARS(hypothesis)
        if is_chinese(language)
        else ENGLISH_WORDS(reference_itn) == ENGLISH_WORDS(hypothesis),
    }
