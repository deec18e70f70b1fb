"""The talking draft's mouth: the portrait's lips move with the Piper voice's phonemes (CPU)."""
import logging

from ..engines import mouth as engine
from ..errors import ModelMissingError, PodiumError
from ..profiling import reported_stage

log = logging.getLogger("podium.mouth")


class PodiumMouth:
    """Makes the portrait of a PodiumPresenter talk: the face mesh (MediaPipe, CPU) is found once,
    the mouth follows the voice's phonemes, the eyes blink, the idle motion stays. Slides, and a
    portrait without a usable face, pass through unchanged (one line says why)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "visual": ("PODIUM_VISUAL", {"tooltip": "The presenter (a portrait with idle motion)."}),
                "speech": ("PODIUM_SPEECH", {"tooltip": "From the Piper voice: its phoneme timings drive the mouth."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.5, "step": 0.05,
                                       "tooltip": "How far the mouth opens; 0 keeps it still."}),
                "blinks": ("BOOLEAN", {"default": True, "tooltip": "Blink every few seconds."}),
            },
            "optional": {
                "face_detector": (["auto", "haar", "yunet"], {"default": "auto",
                                  "tooltip": "Finds the face once: YuNet when installed, else OpenCV's Haar cascade."}),
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "talk"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "A moving mouth for the CPU draft: phonemes to lip shapes on the portrait, blinks, idle motion kept."

    @reported_stage("mouth")
    def talk(self, visual, speech, strength, blinks, face_detector="auto"):
        motion = getattr(visual, "visual", visual)  # a ProceduralIdle keeps the portrait's motion inside
        if not hasattr(motion, "still") or not hasattr(motion, "move"):
            return (visual,)  # slides, or an idle clip: nothing to make talk
        try:
            from ..engines.face_mesh import FaceMesh

            mesh = FaceMesh(face_detector=face_detector)
        except (ModelMissingError, PodiumError) as err:
            log.warning("no talking mouth: %s; the portrait keeps its motion without one", err)
            return (visual,)
        talking = engine.TalkingPortrait(motion, speech, mesh, strength=strength, blinks=blinks)
        if talking.note:
            log.warning("%s", talking.note)
            return (visual,)
        return (talking,)
