"""dap-sidecar demo app: a tiny "home automation" loop to set breakpoints in.

In the container it lives at /usr/src/app/main.py; in your checkout at demo/app/main.py.
"""

import random
import time

state = {"lights": "off", "temperature": 20.0}


def handle_event(event):
    kind, value = event
    if kind == "temperature":
        state["temperature"] = round(value, 1)  # a good place for a breakpoint
    elif kind == "motion":
        state["lights"] = "on" if value else "off"
    return state


def main():
    print("demo app started", flush=True)
    n = 0
    while True:
        n += 1
        event = random.choice([("temperature", 18 + random.random() * 6), ("motion", random.random() > 0.5)])
        handle_event(event)
        if n % 10 == 0:
            print(f"event {n}: {state}", flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    main()
