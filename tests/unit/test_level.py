import numpy as np
import pytest
from av import AudioFrame

from media_server.rtc import level


def frame(samples: np.ndarray, layout: str = "mono") -> AudioFrame:
    f = AudioFrame(format="s16", layout=layout, samples=960)
    f.planes[0].update(samples.astype("<i2").tobytes())
    f.sample_rate = 48000
    return f


@pytest.mark.parametrize("amplitude", [0, 1, 30, 300, 3000, 20000, 32767])
def test_numpy_level_matches_aiortc(amplitude):
    rng = np.random.default_rng(amplitude)
    for samples in (
        np.full(960, amplitude),
        (rng.standard_normal(960) * amplitude).clip(-32768, 32767),
        (np.sin(np.arange(960) / 7) * amplitude),
    ):
        f = frame(samples)
        assert level.compute_audio_level_dbov(f) == level.original()(f)
    stereo = frame(np.tile(np.full(960, amplitude), 2), layout="stereo")
    assert level.compute_audio_level_dbov(stereo) == level.original()(stereo)


def test_install_replaces_aiortcs_function():
    from aiortc import rtp

    level.install()
    assert rtp.compute_audio_level_dbov is level.compute_audio_level_dbov


async def test_the_agent_tracks_silence_is_marked_and_its_level_not_computed():
    from media_server.audio.outbound import AgentAudioTrack

    track = AgentAudioTrack()
    silence = await track.recv()
    assert silence.opaque is level.SILENT
    assert level.compute_audio_level_dbov(silence) == level.original()(silence) == -127
    await track.write(bytes(frame(np.full(960, 3000)).planes[0])[:1920])
    speech = await track.recv()
    assert speech.opaque is None
    assert level.compute_audio_level_dbov(speech) == level.original()(speech) > -127
    # The mark, not the samples, decides: a marked frame is not even read.
    loud = frame(np.full(960, 20000))
    loud.opaque = level.SILENT
    assert level.compute_audio_level_dbov(loud) == -127
    track.stop()
