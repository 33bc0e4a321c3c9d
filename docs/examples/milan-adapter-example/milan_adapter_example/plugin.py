"""The plugin: one hook that hands milan-plugin an adapter for ``CapsuleClassifier``.

It reuses the generic adapter and changes only what differs: which entry of the dict output
holds the activations, and how to lay the flattened positions out on the feature-map grid.
"""

from milan_plugin.hookspecs import hookimpl


@hookimpl
def milan_model_adapter(model):
    from milan_adapter_example.model import CapsuleClassifier

    if not isinstance(model, CapsuleClassifier):
        return None

    from milan_plugin.adapters.torch_module import TorchModuleAdapter

    class CapsuleAdapter(TorchModuleAdapter):
        def arrange(self, layer, activation, inputs):
            if layer != "capsules":
                return super().arrange(layer, activation, inputs)
            rows = (inputs.shape[-2] + 1) // 2  # the capsule conv has stride 2, padding 1
            cols = (inputs.shape[-1] + 1) // 2
            batch, _, types = activation.shape
            return activation.permute(0, 2, 1).reshape(batch, types, rows, cols)

        def unit_dim_for(self, layer, tensor):
            return -1 if layer == "capsules" else super().unit_dim_for(layer, tensor)

    return CapsuleAdapter(
        model,
        name="example:capsules",
        default_layers=["capsules"],
        output_selector={"capsules": "lengths"},
    )
