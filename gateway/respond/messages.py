"""Every text the family reads about an alert, in Chinese and English: pure functions to :class:`Message`.

The detectors (:mod:`gateway.detect`) say what they found, by which rule and with which values;
the words are written here, from those values, so a text says what is configured rather than
what was once the default. The SMS frame around a message (severity, kind, the value) is the
SMS channel's (:mod:`gateway.alerts.sms`).
"""

from __future__ import annotations

from gateway.alerts.model import Message
from gateway.detect.fall_watch import FallWatchEventKind
from gateway.detect.silence import SilenceChange, SilenceFinding
from gateway.detect.vital_state import Escalation, VitalFinding
from gateway.detect.vitals import VitalRule
from gateway.vocabulary import AlertKind

# -- vital signs ------------------------------------------------------------------------------------

VITAL_TEXTS: dict[VitalRule, Message] = {
    VitalRule.GLUCOSE_LEVEL2_HYPO: Message("严重低血糖（2级），请立即处理", "Level 2 hypoglycaemia: act now"),
    VitalRule.GLUCOSE_LEVEL1_HYPO: Message(
        "低血糖（1级），请尽快进食含糖食物并复测", "Level 1 hypoglycaemia: take sugar and re-measure"
    ),
    VitalRule.GLUCOSE_CRISIS: Message(
        "血糖极高（高血糖危象范围），请立即就医", "Blood glucose in hyperglycaemic-crisis range: seek care now"
    ),
    VitalRule.GLUCOSE_SEVERE_HYPER: Message("严重高血糖，请检测酮体", "Severe hyperglycaemia: check ketones"),
    VitalRule.GLUCOSE_HIGH: Message("血糖偏高", "Blood glucose high"),
    VitalRule.GLUCOSE_FASTING_HIGH: Message("空腹血糖偏高", "Fasting blood glucose high"),
    VitalRule.GLUCOSE_PREPRANDIAL_HIGH: Message("餐前血糖偏高", "Blood glucose before a meal high"),
    VitalRule.GLUCOSE_POSTPRANDIAL_HIGH: Message("餐后血糖偏高", "Blood glucose after a meal high"),
    VitalRule.HYPERTENSIVE_CRISIS: Message(
        "血压极高（高血压危象范围），请静坐复测并联系医生",
        "Blood pressure in hypertensive-crisis range: rest, re-measure, call the doctor",
    ),
    # No advice to sit and re-measure: the resident has fallen since.
    VitalRule.HYPERTENSIVE_CRISIS_BEFORE_FALL: Message(
        "血压极高（高血压危象范围）", "Blood pressure in hypertensive-crisis range"
    ),
    VitalRule.HYPERTENSION_GRADE3: Message("血压很高（3级高血压范围）", "Blood pressure very high (grade 3 range)"),
    VitalRule.HYPOTENSION: Message("血压过低", "Blood pressure low"),
    VitalRule.PULSE_OUT_OF_RANGE: Message("脉率异常", "Pulse rate out of range"),
    VitalRule.SPO2_VERY_LOW: Message("血氧饱和度极低，请立即处理", "Oxygen saturation very low: act now"),
    VitalRule.SPO2_LOW_SUSTAINED: Message(
        "血氧饱和度持续偏低，请尽快处理", "Oxygen saturation low for a while: act soon"
    ),
    VitalRule.SPO2_LOW_SPOT_CHECKS: Message(
        "连续两次测量血氧饱和度偏低，请尽快处理", "Oxygen saturation low on two checks in a row: act soon"
    ),
    VitalRule.FEVER_HIGH: Message("高热", "High fever"),
    VitalRule.FEVER: Message("发热", "Fever"),
    VitalRule.HYPOTHERMIA: Message("体温过低", "Body temperature low"),
    VitalRule.REMEASURE: Message(
        "测量结果不可靠（设备提示），请重新测量", "The device flagged this measurement: please measure again"
    ),
}

ESCALATION_SUFFIXES: dict[Escalation, Message] = {
    Escalation.REPEATED: Message("（{window}分钟内再次出现）", " (again within {window} min)"),
    Escalation.WITH_FALL: Message("（同时发生跌倒）", " (together with a fall)"),
}
"""Appended to the rule's text, in the finding's order, when the finding was made an emergency;
``{window}`` is the resident's repeat window in minutes."""


def vital(finding: VitalFinding) -> Message:
    """The rule's text, followed by why it became an emergency (the window named in minutes)."""
    base = VITAL_TEXTS[finding.rule]
    if not finding.escalated:
        return base
    window = _number(finding.window_min)
    zh = "".join(ESCALATION_SUFFIXES[reason].zh.format(window=window) for reason in finding.escalated)
    en = "".join(ESCALATION_SUFFIXES[reason].en.format(window=window) for reason in finding.escalated)
    return Message(base.zh + zh, base.en + en)


# -- silence ----------------------------------------------------------------------------------------


def silence(finding: SilenceFinding) -> Message:
    """A device gone quiet or back, a measurement missed or come: named by device id, with its allowance."""
    device = finding.device
    name = device.device_id
    started = finding.change is SilenceChange.STARTED
    if finding.kind is AlertKind.MEASUREMENT_MISSED:
        if started:
            hours = _number(device.expect_reading_every_h)
            return Message(f"测量未完成：设备 {name} 已 {hours} 小时没有新的测量结果",
                           f"Measurement missed: no reading from {name} for {hours} h")
        return Message(f"已收到设备 {name} 的新测量结果", f"A new reading from {name} came in")
    if started:
        minutes = _number(device.silent_after_min)
        if device.fall_protection:
            return Message(f"跌倒监护已中断：设备 {name} 超过 {minutes} 分钟没有信号，请检查设备",
                           f"Fall protection is off: device {name} not heard from for {minutes} min; check it")
        return Message(f"设备 {name} 超过 {minutes} 分钟没有信号，请检查设备",
                       f"Device {name} not heard from for {minutes} min; check it")
    if device.fall_protection:
        return Message(f"设备 {name} 已恢复信号，跌倒监护已恢复",
                       f"Device {name} is back: fall protection is on again")
    return Message(f"设备 {name} 已恢复信号", f"Device {name} is back")


# -- falls and calls for help -----------------------------------------------------------------------


def fall_detected(cancel_window_s: float) -> Message:
    """A fall just detected: help is called unless the resident cancels within the configured window."""
    window = _number(cancel_window_s)
    return Message(f"检测到疑似跌倒，{window}秒内未取消将呼叫救援",
                   f"Possible fall detected: help is called unless cancelled within {window} s")


FALL_OUTCOMES: dict[FallWatchEventKind, Message] = {
    FallWatchEventKind.CONFIRMED: Message("跌倒后未起身，请立即查看", "Fall confirmed: no recovery, check now"),
    FallWatchEventKind.CANCELLED: Message(
        "跌倒警报已取消（老人已取消或已起身）", "Fall alert cancelled: the resident cancelled or got up"
    ),
    FallWatchEventKind.LONG_LIE: Message("跌倒后长时间未动，情况危急", "Long lie after a fall: no movement, urgent"),
}
"""What the family is told when the cancel window ends (or a long lie follows); getting up inside the
window tells nobody anything new (the alert stays until acknowledged)."""

HELP_REQUESTED = Message("老人按下了求助按钮", "Help button pressed")

RESTARTED_DURING_FALL = Message("网关在跌倒取消期内重启，无法确认是否起身，请立即查看",
                                "The hub restarted during a fall's cancel window: check on the resident now")

# -- the hub itself ---------------------------------------------------------------------------------

TEST_ALERT = Message("测试警报：网关到家属的通知链路正常", "Test alert: the path from the hub to the family works")


def _number(value: float | None) -> str:
    """A configured amount as people write it: 30, not 30.0; 7.5 stays 7.5."""
    if value is None:
        raise ValueError("a message names an amount the finding does not carry")
    return f"{value:g}"
