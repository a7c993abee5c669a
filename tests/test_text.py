import pytest

from asrbench import text


def test_simplified_becomes_taiwan_traditional_with_taiwan_phrases():
    assert text.to_traditional("软件和鼠标") == "軟體和滑鼠"


@pytest.mark.parametrize("spoken, written", [
    ("零九零零零七三三三一", "0900073331"),          # the bundled sample: leading zero kept
    ("電話是零九零零零七三三三一", "電話是0900073331"),
    ("一百二十三", "123"),                         # quantities still read as numbers
    ("兩千零五年", "2005年"),
    ("幺二三", "123"),
    ("洞九洞洞洞七三三三幺", "0900073331"),        # phone-number reading: 洞 for 0, 幺 for 1
    ("洞九洞洞洞七三三三么", "0900073331"),        # ... as OpenCC s2twp writes 幺
    ("洞洞鞋", "洞洞鞋"),                          # 洞 with no other digit is a hole, not a zero
    ("三點五公斤", "3.5公斤"),                      # zh-TW decimal point, as OpenCC writes 点
])
def test_numerals_become_digits_keeping_leading_zeros(spoken, written):
    assert text.inverse_normalize(spoken) == written


def test_asr_prefix_is_removed_before_scoring():
    assert text.strip_asr_prefix("language Chinese<asr_text>零九") == "零九"
    assert text.strip_asr_prefix("<asr_text>零九") == "零九"
    assert text.strip_asr_prefix("language None<asr_text>") == ""


@pytest.mark.parametrize("raw", ["零九零零零七三三三幺", "洞九洞洞洞七三三三幺"])
def test_phone_readings_become_digits_whatever_opencc_does_to_them(raw):
    assert text.to_traditional("幺") != "幺"  # s2twp rewrites 幺: the digit map must know both forms
    assert text.inverse_normalize(text.to_traditional(raw)) == "0900073331"
    assert text.inverse_normalize(raw) == "0900073331"


def test_perfect_transcript_of_the_sample_scores_zero():
    scored = text.score("language Chinese<asr_text>零九零零零七三三三一。", "0900073331", "Chinese")
    assert scored["text_itn"] == "0900073331。"
    assert (scored["wer"], scored["cer"], scored["exact_match"]) == (0.0, 0.0, True)


def test_cer_ignores_spaces_and_punctuation():
    assert text.character_error_rate("你好，世界", "你 好 世界！", "Chinese") == 0.0


def test_cer_counts_one_wrong_digit_as_one_character_in_ten():
    assert text.character_error_rate("0900073331", "0900073332", "Chinese") == pytest.approx(0.1)


def test_wer_treats_each_chinese_character_and_each_digit_as_a_word():
    # 電 話 是 0 9 0 0 0 7 3 3 3 1 -> thirteen words, one wrong digit is one error
    assert text.word_error_rate("電話是0900073331", "電話是0900073332", "Chinese") == pytest.approx(1 / 13)
    # how the digits are grouped, spaced or punctuated is not an error
    assert text.word_error_rate("0900073331", "0900，073，331。", "Chinese") == 0.0
    assert text.word_error_rate("0900073331", "0 9 0 0 0 7 3 3 3 1", "Chinese") == 0.0


def test_simplified_transcript_matches_traditional_reference():
    assert text.score("电话是零九零零零七三三三一", "電話是0900073331", "Chinese")["cer"] == 0.0


def test_empty_transcript_is_all_errors_not_a_crash():
    scored = text.score("", "0900073331", "Chinese")
    assert (scored["wer"], scored["cer"], scored["exact_match"]) == (1.0, 1.0, False)


def test_english_is_scored_on_words_without_case_or_punctuation():
    assert text.word_error_rate("The quick brown fox.", "the quick brown fox", "English") == 0.0
    assert text.word_error_rate("the quick brown fox", "the quick red fox", "English") == pytest.approx(0.25)


PHONE = "0900073331"  # samples/phoneNumber1-zh-TW.txt
FOX = "The quick brown fox jumps over the lazy dog."

# Realistic Qwen3-ASR outputs: (what the model printed, reference, language, scored text, WER, CER, exact match)
REALISTIC = {
    "the sample, with prefix and full stop": (
        "language Chinese<asr_text>零九零零零七三三三一。", PHONE, "Chinese", "0900073331。", 0, 0, True),
    "grouped with commas": (
        "language Chinese<asr_text>零九零零，零七三，三三一。", PHONE, "Chinese", "0900，073，331。", 0, 0, True),
    "no punctuation, language set so only the tag": (
        "<asr_text>零九零零零七三三三一", PHONE, "Chinese", "0900073331", 0, 0, True),
    "spaced Arabic digits": (
        "language Chinese<asr_text>0 9 0 0 0 7 3 3 3 1", PHONE, "Chinese", "0 9 0 0 0 7 3 3 3 1", 0, 0, True),
    "spaced Chinese digits": (
        "language Chinese<asr_text>零 九 零 零 零 七 三 三 三 一", PHONE, "Chinese", "0 9 0 0 0 7 3 3 3 1", 0, 0, True),
    "full-width digits with dashes": (
        "language Chinese<asr_text>０９００－０７３－３３１", PHONE, "Chinese", "０９００－０７３－３３１", 0, 0, True),
    "幺 for 1": (
        "language Chinese<asr_text>零九零零零七三三三幺。", PHONE, "Chinese", "0900073331。", 0, 0, True),
    "洞 for 0 and 幺 for 1": (
        "language Chinese<asr_text>洞九洞洞洞七三三三幺", PHONE, "Chinese", "0900073331", 0, 0, True),
    "last group read as a quantity": (
        "language Chinese<asr_text>零九零零，零七三，三百三十一。", PHONE, "Chinese", "0900，073，331。", 0, 0, True),
    "whole number read as a quantity loses the leading zero": (
        "language Chinese<asr_text>九亿零七万三千三百三十一", PHONE, "Chinese", "900073331", 0.1, 0.1, False),
    "one digit wrong": (
        "language Chinese<asr_text>零九零零零七三三三二。", PHONE, "Chinese", "0900073332。", 0.1, 0.1, False),
    "one digit missing": (
        "language Chinese<asr_text>零九零零，七三，三三一。", PHONE, "Chinese", "0900，73，331。", 0.1, 0.1, False),
    "words around the number are insertions": (
        "language Chinese<asr_text>我的电话是零九零零零七三三三一。", PHONE, "Chinese", "我的電話是0900073331。",
        0.5, 0.5, False),
    "mixed Chinese text, simplified against zh-TW": (
        "language Chinese<asr_text>我的电话是零九零零，零七三，三三一。", "我的電話是0900073331", "Chinese",
        "我的電話是0900，073，331。", 0, 0, True),
    "an English word stays one word": (
        "language Chinese<asr_text>打给Ann，零九零零零七三三三一", "打給Amy 0900073331", "Chinese",
        "打給Ann，0900073331", 1 / 13, 2 / 15, False),
    "year read digit by digit": (
        "language Chinese<asr_text>二零零五年", "2005年", "Chinese", "2005年", 0, 0, True),
    "year read as a quantity": (
        "language Chinese<asr_text>两千零五年", "2005年", "Chinese", "2005年", 0, 0, True),
    "decimal quantity": (
        "language Chinese<asr_text>三点五公斤", "3.5公斤", "Chinese", "3.5公斤", 0, 0, True),
    "empty output": (
        "", PHONE, "Chinese", "", 1, 1, False),
    "no speech": (
        "language None<asr_text>", PHONE, "Chinese", "", 1, 1, False),
    "English sentence": (
        "language English<asr_text>The quick brown fox jumps over the lazy dog.", FOX, "English", FOX,
        0, 0, True),
    "English, one word wrong": (
        "language English<asr_text>The quick brown fox jumped over the lazy dog.", FOX, "English",
        "The quick brown fox jumped over the lazy dog.", 1 / 9, 2 / 43, False),
}


@pytest.mark.parametrize("case", REALISTIC, ids=list(REALISTIC))
def test_realistic_model_outputs_score_as_a_person_would(case):
    raw, reference, language, scored_text, wer, cer, exact = REALISTIC[case]
    scored = text.score(raw, reference, language)
    assert scored["text_itn"] == scored_text
    assert scored["wer"] == pytest.approx(wer)
    assert scored["cer"] == pytest.approx(cer)
    assert scored["exact_match"] is exact
