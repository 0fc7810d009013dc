# profiles: test
# virtio-forwarder's own client stack (Python, Google protobuf, pyzmq, protoc): the control
# compatibility test talks to vio4wd's endpoints the way virtio-forwarder's scripts do.

say "control: ok (protoc $(protoc --version | cut -d' ' -f2))"
