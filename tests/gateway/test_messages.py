"""The family's texts (gateway.respond.messages): the fall message names the configured cancel window,
every rule has its text, and the texts that were there before the respond layer read as they did."""

from __future__ import annotations

import pytest

from gateway.alerts.model import Message
from gateway.detect.fall_watch import FallWatchEventKind
from gateway.detect.vital_state import Escalation, VitalFinding
from gateway.detect.vitals import VitalRule
from gateway.respond import messages
from gateway.vocabulary import AlertKind, Severity

EN_FALL = "Possible fall detected: help is called unless cancelled within {} s"


@pytest.mark.parametrize(("window_s", "zh", "en"), [
    (30.0, "检测到疑似跌倒，30秒内未取消将呼叫救援", EN_FALL.format(30)),
    (60.0, "检测到疑似跌倒，60秒内未取消将呼叫救援", EN_FALL.format(60)),
    (5, "检测到疑似跌倒，5秒内未取消将呼叫救援", EN_FALL.format(5)),
    (300, "检测到疑似跌倒，300秒内未取消将呼叫救援", EN_FALL.format(300)),
    (7.5, "检测到疑似跌倒，7.5秒内未取消将呼叫救援", EN_FALL.format(7.5)),
])
def test_the_fall_message_names_the_cancel_window_it_is_given(window_s: float, zh: str, en: str) -> None:
    assert messages.fall_detected(window_s) == Message(zh, en)


def test_the_fall_outcomes_help_call_restart_and_test_texts_are_unchanged() -> None:
    outcomes = {kind.value: (text.zh, text.en) for kind, text in messages.FALL_OUTCOMES.items()}
    assert outcomes == {
        "confirmed": ("跌倒后未起身，请立即查看", "Fall confirmed: no recovery, check now"),
        "cancelled": ("跌倒警报已取消（老人已取消或已起身）", "Fall alert cancelled: the resident cancelled or got up"),
        "long_lie": ("跌倒后长时间未动，情况危急", "Long lie after a fall: no movement, urgent"),
    }
    fixed = {name: getattr(messages, name) for name in ("HELP_REQUESTED", "RESTARTED_DURING_FALL", "TEST_ALERT")}
    assert fixed == {
        "HELP_REQUESTED": Message("老人按下了求助按钮", "Help button pressed"),
        "RESTARTED_DURING_FALL": Message("网关在跌倒取消期内重启，无法确认是否起身，请立即查看",
                                         "The hub restarted during a fall's cancel window: check on the resident now"),
        "TEST_ALERT": Message("测试警报：网关到家属的通知链路正常",
                              "Test alert: the path from the hub to the family works"),
    }


SINGLE_READING_TEXTS = {
    VitalRule.GLUCOSE_LEVEL2_HYPO: ("严重低血糖（2级），请立即处理", "Level 2 hypoglycaemia: act now"),
    VitalRule.GLUCOSE_LEVEL1_HYPO: ("低血糖（1级），请尽快进食含糖食物并复测",
                                    "Level 1 hypoglycaemia: take sugar and re-measure"),
    VitalRule.GLUCOSE_CRISIS: ("血糖极高（高血糖危象范围），请立即就医",
                               "Blood glucose in hyperglycaemic-crisis range: seek care now"),
    VitalRule.GLUCOSE_SEVERE_HYPER: ("严重高血糖，请检测酮体", "Severe hyperglycaemia: check ketones"),
    VitalRule.GLUCOSE_HIGH: ("血糖偏高", "Blood glucose high"),
    VitalRule.HYPERTENSIVE_CRISIS: ("血压极高（高血压危象范围），请静坐复测并联系医生",
                                    "Blood pressure in hypertensive-crisis range: rest, re-measure, call the doctor"),
    VitalRule.HYPERTENSION_GRADE3: ("血压很高（3级高血压范围）", "Blood pressure very high (grade 3 range)"),
    VitalRule.HYPOTENSION: ("血压过低", "Blood pressure low"),
    VitalRule.PULSE_OUT_OF_RANGE: ("脉率异常", "Pulse rate out of range"),
    VitalRule.SPO2_VERY_LOW: ("血氧饱和度极低，请立即处理", "Oxygen saturation very low: act now"),
    VitalRule.FEVER_HIGH: ("高热", "High fever"),
    VitalRule.FEVER: ("发热", "Fever"),
    VitalRule.HYPOTHERMIA: ("体温过低", "Body temperature low"),
    VitalRule.REMEASURE: ("测量结果不可靠（设备提示），请重新测量",
                          "The device flagged this measurement: please measure again"),
}
"""The single-reading rules' texts as detect/vitals.py wrote them before they moved (the stateful
rules' texts are checked in tests/detect/test_vital_state.py)."""


@pytest.mark.parametrize("rule", list(SINGLE_READING_TEXTS))
def test_the_single_reading_texts_are_unchanged(rule: VitalRule) -> None:
    finding = VitalFinding(AlertKind.FEVER, Severity.URGENT, rule, "threshold", ("rec-1",))
    assert messages.vital(finding) == Message(*SINGLE_READING_TEXTS[rule])


def test_every_rule_and_every_escalation_has_its_text() -> None:
    assert set(messages.VITAL_TEXTS) == set(VitalRule)
    assert set(messages.ESCALATION_SUFFIXES) == set(Escalation)
    assert set(messages.FALL_OUTCOMES) == set(FallWatchEventKind) - {FallWatchEventKind.RECOVERED}


def test_an_escalation_names_the_residents_window_in_minutes() -> None:
    finding = VitalFinding(AlertKind.HYPOGLYCAEMIA, Severity.EMERGENCY, VitalRule.GLUCOSE_LEVEL1_HYPO,
                           "glucose_level1_hypo_mmol_l", ("rec-2", "rec-1"), (Escalation.REPEATED,), 45.0)
    assert messages.vital(finding) == Message("低血糖（1级），请尽快进食含糖食物并复测（45分钟内再次出现）",
                                              "Level 1 hypoglycaemia: take sugar and re-measure (again within 45 min)")


def test_an_escalated_finding_must_carry_its_window() -> None:
    with pytest.raises(ValueError, match="window"):
        VitalFinding(AlertKind.HYPOGLYCAEMIA, Severity.EMERGENCY, VitalRule.GLUCOSE_LEVEL1_HYPO,
                     "glucose_level1_hypo_mmol_l", ("rec-1",), (Escalation.REPEATED,))
