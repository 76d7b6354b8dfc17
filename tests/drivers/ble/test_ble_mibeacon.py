"""MiBeacon through xiaomi-ble: the byte examples of xiaomi-ble's and ble_monitor's test suites (MMC-W505,
MMC-T201-1, CGG1 with its bind key, RTCGQ02LM with a wrong key), frames our fake BlueZ writes
(encrypted W505, an unknown product standing for the BPX1), and a fuzz run.
"""

from __future__ import annotations

import os
import random

import pytest
from fake_bluez.devices import MIBEACON_BODY_TEMPERATURE, encode_mibeacon, mibeacon_object

from drivers.ble.mibeacon import (
    MiBeaconDecoder,
    MiBeaconError,
    MiBeaconHeader,
    MiBeaconReading,
    NotAHealthDeviceError,
    UnknownProductError,
    decode_header,
)

# xiaomi-ble tests/test_parser.py, test_Xiaomi_MMC_W505: 34.45 °C, MiBeacon v2, plain.
W505 = b'p"\x91\x03\x0f\xdb\xabS\x18$\xd0\t\n\x00\x02u\r\x07'
W505_ADDRESS = "D0:24:18:53:AB:DB"
# ble_monitor tests, test_Xiaomi_MMC_T201_1 (the 0xFE95 service data of its raw HCI event).
T201 = bytes.fromhex("7022db006fc16fddf9810009002005c60d630d51")
T201_ADDRESS = "00:81:F9:DD:6F:C1"
# xiaomi-ble test_Xiaomi_CGG1: a room thermometer's MiBeacon v5 advert, encrypted, with its key.
CGG1 = b"XXH\x0bh_\x124-XZ\x0b\x18A\xe2\xaa\x00\x0e\x00\xa4\x96O\xb5"
CGG1_ADDRESS = "5A:58:2D:34:12:5F"
CGG1_KEY = bytes.fromhex("814aac74c4f17b6c1581e1ab87816b99")
# xiaomi-ble test_bindkey_wrong: an RTCGQ02LM advert with a key that is not its own.
RTCGQ02LM = b"XY\x8d\n\x17\x0f\xc4\xe0D\xefT|\xc2z\\\x03\xa1\x00\x00\x00y\r\xf2X"
RTCGQ02LM_ADDRESS = "54:EF:44:E0:C4:0F"

FAKE_ADDRESS = "D0:24:18:53:AB:07"
FAKE_KEY = bytes.fromhex("b65f0e3b2cd35e8a4a3f6e9c5d7e1a20")


def _temperature_frame(celsius: float, *, counter: int = 7, key: bytes | None = FAKE_KEY,
                       product_id: int = 0x0391) -> bytes:
    value = mibeacon_object(MIBEACON_BODY_TEMPERATURE, round(celsius * 100).to_bytes(2, "little", signed=True))
    return encode_mibeacon(FAKE_ADDRESS, product_id, counter, value, key, ext_counter=counter)


def test_w505_example_is_a_body_temperature() -> None:
    assert MiBeaconDecoder().decode(W505_ADDRESS, W505, 1.0) == MiBeaconReading(
        address=W505_ADDRESS, model="MMC-W505", frame_counter=15, body_temperature_c=34.45)


def test_t201_example_is_a_body_temperature_with_battery() -> None:
    # The library's own fitted formula turns the two sensor temperatures into 36.872 °C.
    assert MiBeaconDecoder().decode(T201_ADDRESS, T201, 1.0) == MiBeaconReading(
        address=T201_ADDRESS, model="MMC-T201-1", frame_counter=111, body_temperature_c=36.87, battery_percent=81)


def test_an_encrypted_w505_frame_decodes_with_its_key() -> None:
    assert MiBeaconDecoder(FAKE_KEY).decode(FAKE_ADDRESS, _temperature_frame(38.6), 1.0) == MiBeaconReading(
        address=FAKE_ADDRESS, model="MMC-W505", frame_counter=7, body_temperature_c=38.6, encrypted=True)


def test_a_plain_frame_needs_no_key_even_when_one_is_configured() -> None:
    reading = MiBeaconDecoder(FAKE_KEY).decode(FAKE_ADDRESS, _temperature_frame(36.5, key=None), 1.0)
    assert reading == MiBeaconReading(address=FAKE_ADDRESS, model="MMC-W505", frame_counter=7,
                                      body_temperature_c=36.5)


def test_an_encrypted_frame_without_a_key_or_with_another_key_is_refused() -> None:
    with pytest.raises(MiBeaconError, match="does not decrypt"):
        MiBeaconDecoder().decode(FAKE_ADDRESS, _temperature_frame(38.6), 1.0)
    with pytest.raises(MiBeaconError, match="does not decrypt"):
        MiBeaconDecoder(CGG1_KEY).decode(FAKE_ADDRESS, _temperature_frame(38.6), 1.0)


def test_xiaomi_bles_wrong_key_example_is_refused() -> None:
    with pytest.raises(MiBeaconError, match="does not decrypt"):
        MiBeaconDecoder(CGG1_KEY).decode(RTCGQ02LM_ADDRESS, RTCGQ02LM, 1.0)


def test_a_room_thermometer_is_no_health_device_even_decrypted() -> None:
    with pytest.raises(NotAHealthDeviceError) as caught:
        MiBeaconDecoder(CGG1_KEY).decode(CGG1_ADDRESS, CGG1, 1.0)
    assert caught.value.model == "CGG1-ENCRYPTED"


def test_a_product_xiaomi_ble_does_not_know_is_said_to_be_undecodable() -> None:
    # What a BPX1 cuff gets: xiaomi-ble has no product id for it.
    with pytest.raises(UnknownProductError, match="0xbeef") as caught:
        MiBeaconDecoder(FAKE_KEY).decode(FAKE_ADDRESS, _temperature_frame(37.0, product_id=0xBEEF), 1.0)
    assert caught.value.product_id == 0xBEEF


def test_repeats_of_a_frame_are_dropped_and_a_new_counter_is_a_new_reading() -> None:
    decoder = MiBeaconDecoder(FAKE_KEY)
    assert decoder.decode(FAKE_ADDRESS, _temperature_frame(37.0, counter=9), 1.0) is not None
    assert decoder.decode(FAKE_ADDRESS, _temperature_frame(37.0, counter=9), 1.1) is None
    assert decoder.decode(FAKE_ADDRESS, _temperature_frame(37.4, counter=10), 5.0) == MiBeaconReading(
        address=FAKE_ADDRESS, model="MMC-W505", frame_counter=10, body_temperature_c=37.4, encrypted=True)


def test_a_frame_without_an_object_says_nothing() -> None:
    # xiaomi-ble's test_blank_advertisements_then_encrypted: a header without payload.
    assert MiBeaconDecoder().decode("A4:C1:38:D4:3C:48", b"0X[\x05\x02H<\xd48\xc1\xa4\x08", 1.0) is None


def test_the_header_of_the_w505_example() -> None:
    assert decode_header(W505_ADDRESS, W505) == MiBeaconHeader(frame_control=0x2270, product_id=0x0391,
                                                               frame_counter=15)


@pytest.mark.parametrize(("data", "message"), [
    (b"\x50\x20\x91", "shorter than a frame header"),
    (b"\xd0\x50\x91\x03\x01", "mesh"),
    (b"\x50\x10\x91\x03\x01", "version 1"),
])
def test_frames_the_library_does_not_read_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(MiBeaconError, match=message):
        MiBeaconDecoder().decode(FAKE_ADDRESS, data, 1.0)


def test_a_bind_key_is_16_bytes() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        MiBeaconDecoder(b"\x01" * 12)


def test_fuzzed_frames_raise_nothing_but_the_codec_error() -> None:
    seed = int(os.environ.get("YIYANG_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
    print(f"MiBeacon fuzz seed {seed} (pin with YIYANG_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    valid = [W505, T201, CGG1, RTCGQ02LM, _temperature_frame(37.2), _temperature_frame(36.9, key=None)]
    for _ in range(3000):
        base = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            if kind < 0.5 and base:
                base[rng.randrange(len(base))] = rng.randrange(256)
            elif kind < 0.75:
                del base[rng.randrange(len(base) + 1):]
            else:
                base += rng.randbytes(rng.randint(1, 8))
        if rng.random() < 0.1:
            base = bytearray(rng.randbytes(rng.randint(0, 31)))
        try:
            result = MiBeaconDecoder(rng.choice([None, CGG1_KEY, FAKE_KEY])).decode(FAKE_ADDRESS, bytes(base), 1.0)
        except MiBeaconError:
            continue
        assert result is None or isinstance(result, MiBeaconReading)
