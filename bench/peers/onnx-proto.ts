// A small protobuf writer and just enough of onnx.proto to write one-node ONNX models from Node,
// so the benchmark needs neither Python nor the onnx package. Field numbers are those of
// onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, ValueInfoProto, TypeProto,
// TensorShapeProto, OperatorSetIdProto).
//
// Protobuf wire format in brief: every field is a key varint (field_number << 3 | wire_type)
// followed by its value; wire type 0 = varint (int32/int64/enum), 2 = length-delimited (string,
// bytes, embedded message), 5 = 32-bit little-endian (float). Negative int64s are 10-byte varints
// of their two's complement.

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

/** Appends protobuf fields to a growable byte buffer. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  private byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  /** A raw varint; numbers must be safe integers, negatives are written as 64-bit two's complement. */
  varint(value: number | bigint): this {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw new RangeError(`varint: expected a safe integer, got ${value}`);
    }
    let v = BigInt.asUintN(64, BigInt(value));
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) b |= 0x80;
      this.byte(b);
    } while (v !== 0n);
    return this;
  }

  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** int32, int64, enum and bool fields. */
  int(field: number, value: number | bigint): this {
    this.key(field, WIRE_VARINT);
    return this.varint(value);
  }

  /** float fields (fixed32, little-endian IEEE 754 single). */
  float(field: number, value: number): this {
    this.key(field, WIRE_FIXED32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, value, true);
    this.len += 4;
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LENGTH_DELIMITED);
    this.varint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** An embedded message, written by `write` into its own writer. */
  message(field: number, write: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    write(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** TensorProto.DataType values used here. */
export const ElemType = { FLOAT: 1, FLOAT16: 10, BFLOAT16: 16 } as const;
export type ElemTypeValue = (typeof ElemType)[keyof typeof ElemType];

/** AttributeProto.AttributeType values used here. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3 } as const;

export type AttributeValue = { float: number } | { int: number } | { string: string };

export interface NodeSpec {
  opType: string;
  domain?: string; // '' = the default ONNX domain
  name?: string;
  inputs: string[]; // '' marks an omitted optional input
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export interface ValueInfoSpec {
  name: string;
  elemType: ElemTypeValue;
  shape: (number | string)[]; // a string is a symbolic dimension (dim_param)
}

export interface ModelSpec {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producerName?: string;
  graph: { name: string; nodes: NodeSpec[]; inputs: ValueInfoSpec[]; outputs: ValueInfoSpec[] };
}

// onnx.proto field numbers.
const Model = { irVersion: 1, producerName: 2, producerVersion: 3, graph: 7, opsetImport: 8 } as const;
const OperatorSetId = { domain: 1, version: 2 } as const;
const Graph = { node: 1, name: 2, input: 11, output: 12 } as const;
const Node = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const Attribute = { name: 1, f: 2, i: 3, s: 4, type: 20 } as const;
const ValueInfo = { name: 1, type: 2 } as const;
const TypeProto = { tensorType: 1 } as const;
const TypeTensor = { elemType: 1, shape: 2 } as const;
const TensorShape = { dim: 1 } as const;
const Dimension = { dimValue: 1, dimParam: 2 } as const;

function writeAttribute(w: ProtoWriter, name: string, value: AttributeValue): void {
  w.string(Attribute.name, name);
  if ('float' in value) {
    w.float(Attribute.f, value.float).int(Attribute.type, AttrType.FLOAT);
  } else if ('int' in value) {
    w.int(Attribute.i, value.int).int(Attribute.type, AttrType.INT);
  } else {
    w.string(Attribute.s, value.string).int(Attribute.type, AttrType.STRING);
  }
}

function writeNode(w: ProtoWriter, node: NodeSpec): void {
  for (const input of node.inputs) w.string(Node.input, input);
  for (const output of node.outputs) w.string(Node.output, output);
  if (node.name) w.string(Node.name, node.name);
  w.string(Node.opType, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    w.message(Node.attribute, (a) => writeAttribute(a, name, value));
  }
  if (node.domain) w.string(Node.domain, node.domain);
}

function writeValueInfo(w: ProtoWriter, vi: ValueInfoSpec): void {
  w.string(ValueInfo.name, vi.name);
  w.message(ValueInfo.type, (t) =>
    t.message(TypeProto.tensorType, (tt) => {
      tt.int(TypeTensor.elemType, vi.elemType);
      tt.message(TypeTensor.shape, (s) => {
        for (const d of vi.shape) {
          s.message(TensorShape.dim, (dim) =>
            typeof d === 'number' ? dim.int(Dimension.dimValue, d) : dim.string(Dimension.dimParam, d),
          );
        }
      });
    }),
  );
}

/** Serialises a ModelProto holding one graph. */
export function encodeModel(spec: ModelSpec): Uint8Array {
  const w = new ProtoWriter();
  w.int(Model.irVersion, spec.irVersion);
  w.string(Model.producerName, spec.producerName ?? 'splash-attention-bench');
  w.string(Model.producerVersion, '1');
  w.message(Model.graph, (g) => {
    for (const node of spec.graph.nodes) g.message(Graph.node, (n) => writeNode(n, node));
    g.string(Graph.name, spec.graph.name);
    for (const vi of spec.graph.inputs) g.message(Graph.input, (v) => writeValueInfo(v, vi));
    for (const vi of spec.graph.outputs) g.message(Graph.output, (v) => writeValueInfo(v, vi));
  });
  for (const op of spec.opsets) {
    w.message(Model.opsetImport, (o) => {
      if (op.domain) o.string(OperatorSetId.domain, op.domain);
      o.int(OperatorSetId.version, op.version);
    });
  }
  return w.finish();
}
