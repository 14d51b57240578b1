"""Distribution ops of the fused embedding-to-layout pipeline.

`fused_embedding_to_layout` pools the embeddings of every (feature, example) entry of a batch into
the layout tensors described by a `FeatureConfigs` (see fused_layout.md §2-§4), following the
offsets produced by `parsers.sharding_sparse_fids`. Gradients are registered for every op version.
"""
from typing import List, Optional

import tensorflow as tf
from absl import logging

from idl.matrix.proto.example_pb2 import FeatureConfigs
from monolith.native_training.runtime.ops import gen_monolith_ops

_VARIANT_TYPES = ('example', 'example_batch', 'examplebatch', 'instance')


def _normalize_variant_type(variant_type: str) -> str:
  assert variant_type in _VARIANT_TYPES, 'variant_type {} not in {}'.format(
      variant_type, _VARIANT_TYPES)
  return 'example_batch' if variant_type == 'examplebatch' else variant_type


def _num_layout_tensors(feature_cfgs: FeatureConfigs) -> int:
  return sum(len(out_conf.shape) for out_conf in feature_cfgs.out_configs.values())


def _common_args(version, fid_list_emb_row_lenth, fid_offset, feature_offset, nfl_offset,
                 batch_size, variant_type, feature_cfgs: FeatureConfigs):
  """Validates the version-specific input and returns the arguments that every version of the
  forward and gradient ops takes."""
  if version == 4:
    assert fid_list_emb_row_lenth is not None, 'version 4 needs fid_list_emb_row_lenth'
  else:
    assert fid_list_emb_row_lenth is None, 'fid_list_emb_row_lenth is only used by version 4'
  return dict(fid_offset=fid_offset,
              feature_offset=feature_offset,
              nfl_offset=nfl_offset,
              batch_size=batch_size,
              variant_type=_normalize_variant_type(variant_type),
              feature_cfgs=feature_cfgs.SerializeToString())


def fused_embedding_to_layout(embeddings_list: List[tf.Tensor],
                              fid_list_row_split: Optional[List[tf.Tensor]],
                              fid_offset: tf.Tensor,
                              feature_offset: tf.Tensor,
                              nfl_offset: tf.Tensor,
                              batch_size: tf.Tensor,
                              variant_type: str,
                              feature_cfgs: FeatureConfigs,
                              ps_num: int,
                              fid_list_emb_row_lenth: Optional[tf.Tensor] = None,
                              nfl_size: Optional[tf.Tensor] = None,
                              feature_size: Optional[tf.Tensor] = None,
                              fid_size: Optional[tf.Tensor] = None,
                              emb_size: Optional[tf.Tensor] = None,
                              parallel_flag: int = 0,
                              version: int = 3) -> List[tf.Tensor]:
  """Returns the layout tensors, in sorted layout-name order, each layout's shapes in order."""
  common = _common_args(version, fid_list_emb_row_lenth, fid_offset, feature_offset, nfl_offset,
                        batch_size, variant_type, feature_cfgs)
  common['num_out'] = _num_layout_tensors(feature_cfgs)
  if version == 5:
    return gen_monolith_ops.monolith_embedding_to_layout_v5(embeddings_list=embeddings_list,
                                                            nfl_size=nfl_size,
                                                            feature_size=feature_size,
                                                            fid_size=fid_size,
                                                            emb_size=emb_size,
                                                            ps_num=ps_num,
                                                            parallel_flag=parallel_flag,
                                                            **common)
  if version == 4:
    return gen_monolith_ops.monolith_embedding_to_layout_v4(
        embeddings_list=embeddings_list,
        fid_list_emb_row_lenth=fid_list_emb_row_lenth,
        ps_num=ps_num,
        parallel_flag=parallel_flag,
        **common)
  if version == 3:
    return gen_monolith_ops.monolith_embedding_to_layout_v3(embeddings_list=embeddings_list,
                                                            ps_num=ps_num,
                                                            parallel_flag=parallel_flag,
                                                            **common)
  if version == 2:
    return gen_monolith_ops.monolith_embedding_to_layout_v2(embeddings_list=embeddings_list,
                                                            fid_list_row_split=fid_list_row_split,
                                                            ps_num=ps_num,
                                                            parallel_flag=parallel_flag,
                                                            **common)
  # v1 kernels are always serial and take no ps_num.
  return gen_monolith_ops.monolith_embedding_to_layout(embeddings_list=embeddings_list, **common)


_grad_scale_logged = False


def fused_embedding_to_layout_grad(nfl_offset: tf.Tensor,
                                   feature_offset: tf.Tensor,
                                   fid_offset: tf.Tensor,
                                   batch_size: tf.Tensor,
                                   embeddings_list: List[tf.Tensor],
                                   fid_list_row_split: Optional[List[tf.Tensor]],
                                   layout_tensors_grad: List[tf.Tensor],
                                   variant_type: str,
                                   feature_cfgs: FeatureConfigs,
                                   ps_num: int,
                                   fid_list_emb_row_lenth: Optional[tf.Tensor] = None,
                                   layout_tensors_grad_scale=None,
                                   parallel_flag: int = 0,
                                   version: int = 3) -> List[tf.Tensor]:
  """Gradients of the layout tensors w.r.t. every tensor of `embeddings_list` (same shapes)."""
  global _grad_scale_logged
  common = _common_args(version, fid_list_emb_row_lenth, fid_offset, feature_offset, nfl_offset,
                        batch_size, variant_type, feature_cfgs)
  if layout_tensors_grad_scale is not None:
    if not _grad_scale_logged:
      logging.info('fused_embedding_to_layout_grad: scaling layout gradients by %s',
                   layout_tensors_grad_scale)
      _grad_scale_logged = True
    layout_tensors_grad = [g * layout_tensors_grad_scale for g in layout_tensors_grad]
  common.update(embeddings_list=embeddings_list, tensors_grad=layout_tensors_grad)
  if version == 4:
    return gen_monolith_ops.monolith_embedding_to_layout_grad_v4(
        fid_list_emb_row_lenth=fid_list_emb_row_lenth,
        ps_num=ps_num,
        parallel_flag=parallel_flag,
        **common)
  if version in (3, 5):
    return gen_monolith_ops.monolith_embedding_to_layout_grad_v3(ps_num=ps_num,
                                                                 parallel_flag=parallel_flag,
                                                                 **common)
  if version == 2:
    return gen_monolith_ops.monolith_embedding_to_layout_grad_v2(
        fid_list_row_split=fid_list_row_split,
        ps_num=ps_num,
        parallel_flag=parallel_flag,
        **common)
  return gen_monolith_ops.monolith_embedding_to_layout_grad(**common)


def _grad_args(op, grads, embeddings, offsets_at):
  """Arguments every grad op takes: the forward's embeddings, its four offset inputs (starting at
  input `offsets_at`), the layout gradients and the forward's attrs."""
  fid_offset, feature_offset, nfl_offset, batch_size = op.inputs[offsets_at:offsets_at + 4]
  return dict(embeddings_list=embeddings,
              fid_offset=fid_offset,
              feature_offset=feature_offset,
              nfl_offset=nfl_offset,
              batch_size=batch_size,
              tensors_grad=list(grads),
              variant_type=op.get_attr('variant_type'),
              feature_cfgs=op.get_attr('feature_cfgs'))


# Registered gradients re-read the forward's attrs and always run serially (parallel_flag = 0).
@tf.RegisterGradient('MonolithEmbeddingToLayout')
def _embedding_to_layout_grad(op, *grads):
  m = op.get_attr('M')
  out = gen_monolith_ops.monolith_embedding_to_layout_grad(
      **_grad_args(op, grads, list(op.inputs[:m]), m))
  return list(out) + [None] * 4


@tf.RegisterGradient('MonolithEmbeddingToLayoutV2')
def _embedding_to_layout_v2_grad(op, *grads):
  m = op.get_attr('M')
  out = gen_monolith_ops.monolith_embedding_to_layout_grad_v2(
      fid_list_row_split=list(op.inputs[m:2 * m]),
      ps_num=op.get_attr('ps_num'),
      parallel_flag=0,
      **_grad_args(op, grads, list(op.inputs[:m]), 2 * m))
  return list(out) + [None] * (m + 4)


def _v3_grad(op, grads, num_extra_inputs):
  m = op.get_attr('M')
  out = gen_monolith_ops.monolith_embedding_to_layout_grad_v3(
      ps_num=op.get_attr('ps_num'),
      parallel_flag=0,
      **_grad_args(op, grads, list(op.inputs[:m]), m))
  return list(out) + [None] * num_extra_inputs


@tf.RegisterGradient('MonolithEmbeddingToLayoutV3')
def _embedding_to_layout_v3_grad(op, *grads):
  return _v3_grad(op, grads, 4)


@tf.RegisterGradient('MonolithEmbeddingToLayoutV5')
def _embedding_to_layout_v5_grad(op, *grads):
  # Training is single-request, so V5 shares GradV3 (its size inputs get no gradient).
  return _v3_grad(op, grads, 8)


@tf.RegisterGradient('MonolithEmbeddingToLayoutV4')
def _embedding_to_layout_v4_grad(op, *grads):
  out = gen_monolith_ops.monolith_embedding_to_layout_grad_v4(
      fid_list_emb_row_lenth=op.inputs[1],
      ps_num=op.get_attr('ps_num'),
      parallel_flag=0,
      **_grad_args(op, grads, [op.inputs[0]], 2))
  return list(out) + [None] * 5
