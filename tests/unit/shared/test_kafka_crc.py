"""kafka-python (ingest's producer) checksums every record batch with CRC-32C: in C, not in Python."""

from kafka.record import util


def test_kafka_python_uses_the_compiled_crc32c() -> None:
    assert util._crc32c is not util.crc32c_py, "install crc32c: the pure-Python CRC-32C runs at about 9 MB/s"
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
