// Run face-api's own FaceExpressionNet (face-api's JS on @tensorflow/tfjs, cpu backend) on raw RGB face crops.
// argv[2]: face-api's ESM module; stdin: {"dir": model folder, "inputs": [{"h", "w", "data": base64 HxWx3 uint8}]}
// stdout: {"backend", "version", "probabilities": [[7 floats in FACE_EXPRESSION_LABELS order], ...]}
import fs from 'fs';

const faceapi = await import(process.argv[2]);
const { tf } = faceapi;
await tf.setBackend('cpu');
await tf.ready();
const request = JSON.parse(fs.readFileSync(0, 'utf8'));
const manifest = JSON.parse(fs.readFileSync(`${request.dir}/face_expression_model-weights_manifest.json`));
const bin = fs.readFileSync(`${request.dir}/face_expression_model.bin`);
const weights = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest[0].weights);
faceapi.nets.faceExpressionNet.loadFromWeightMap(weights);
const probabilities = [];
for (const item of request.inputs) {
  const pixels = tf.tensor3d(new Int32Array(Buffer.from(item.data, 'base64')), [item.h, item.w, 3], 'int32');
  const expressions = await faceapi.nets.faceExpressionNet.predictExpressions(pixels);
  probabilities.push(faceapi.FACE_EXPRESSION_LABELS.map((label) => expressions[label]));
  pixels.dispose();
}
console.log(JSON.stringify({ backend: tf.getBackend(), version: tf.version_core, probabilities }));
