"""Jobs: each wires a source (images, videos, folders of pairs), the engine and a sink.

- `folder`: every image and video of a folder into another folder;
- `video`: one video (or a folder of frames) into a video file;
- `segments`: a video's frames written as segments of closed GOPs, each recorded once whole;
- `resume`: the hidden working folder beside a video output, so a stopped video resumes;
- `windows`: a stream of frames as the windows of neighbouring frames a temporal model reads;
- `cluster`: a folder job's files spread over Ray workers, whole files each;
- `evaluate`: scores of derained images against clean ones;
- `bench`: the speed and memory figures of `vidderain bench`;
- `compare`: before/after pictures, for the folder and video jobs.
"""
