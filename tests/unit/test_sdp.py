import pytest

from signaling.sdp import SdpError, check_offer_sdp
from tests.integration.test_signaling import MINIMAL_OFFER


def test_a_real_looking_offer_passes():
    assert check_offer_sdp(MINIMAL_OFFER) == MINIMAL_OFFER


@pytest.mark.parametrize(
    ("sdp", "fragment"),
    [
        (None, "non-empty string"),
        ("", "non-empty string"),
        ("v=1\r\n" + MINIMAL_OFFER[5:], "v=0"),
        (MINIMAL_OFFER.replace("m=audio", "m=video"), "no audio"),
        (MINIMAL_OFFER.replace("a=ice-ufrag:abcd\r\n", ""), "ice-ufrag"),
        (MINIMAL_OFFER.replace("a=ice-pwd:", "a=ice-pass:"), "ice-pwd"),
        (MINIMAL_OFFER.replace("a=fingerprint:", "a=fp:"), "fingerprint"),
        (MINIMAL_OFFER + "a=x\x00\r\n", "NUL"),
        (MINIMAL_OFFER + "garbage line\r\n", "x=value"),
        (MINIMAL_OFFER + "a=x\r\n" * 1000, "lines"),
        (MINIMAL_OFFER + "a=" + "x" * 3000 + "\r\n", "longer"),
    ],
)
def test_bad_shapes_are_refused_with_a_reason(sdp, fragment):
    with pytest.raises(SdpError, match=fragment):
        check_offer_sdp(sdp)
