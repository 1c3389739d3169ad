"""m2m: read a manga with background music generated from the book itself (Hugging Face Space entry).

    python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from m2m.ui import AppConfig, build_app, launch_kwargs

if __name__ == "__main__":
    config = AppConfig.from_env()
    build_app(config).queue(default_concurrency_limit=2).launch(**launch_kwargs(config))
